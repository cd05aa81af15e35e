"""docker-compose.yml (Docker does not run here): the services users deploy are wired as meant."""

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_the_app_and_its_jobs_share_one_configuration_on_the_runtime_role():
    app, jobs = COMPOSE["services"]["app"], COMPOSE["services"]["jobs"]
    assert app["environment"] == jobs["environment"] and app["env_file"] == jobs["env_file"]
    assert app["environment"]["DATABASE_URL"].startswith("postgres://dac_app:")  # not the owner, not the superuser
    assert app["environment"]["DEBUG"] == "0"


def test_expired_demo_sandboxes_are_purged_hourly_once_the_app_is_up():
    jobs = COMPOSE["services"]["jobs"]
    assert "manage.py purge_demo" in jobs["command"][-1] and "sleep 3600" in jobs["command"][-1]
    assert jobs["depends_on"]["app"]["condition"] == "service_healthy"
    assert jobs["image"] == COMPOSE["services"]["app"]["image"]


def test_the_app_is_given_time_to_finish_its_answers_when_stopped():
    """Docker's stop timeout outlasts uvicorn's wait for the open requests (the image's command)
    plus DAC's own grace for the answers still running (its production default; the test
    settings shorten it)."""
    requests = re.search(r"--timeout-graceful-shutdown (\d+)", (ROOT / "Dockerfile").read_text())
    answers = re.search(r'"DAC_SHUTDOWN_GRACE_SECONDS", default=([0-9.]+)', (ROOT / "dac/settings.py").read_text())
    stop = COMPOSE["services"]["app"]["stop_grace_period"]
    assert stop.endswith("s") and int(stop[:-1]) > int(requests.group(1)) + float(answers.group(1))


def test_the_app_may_hold_thousands_of_streams():
    assert COMPOSE["services"]["app"]["ulimits"]["nofile"] >= 8192
