"""What one process changes, a serving worker forgets at once (dac/invalidation.py): a DAC worker
answering the gateway with its caches warm, and the change made in another process (a management
command, a shell as an owner's page in another worker would), on a PostgreSQL cluster and a Redis
of the test's own. The caches are given a minute, so that only being told explains a change seen
in time.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from tests.reliability.procs import DacProcess, PgCluster, pg_available
from tests.servers import RedisServer

pytestmark = [
    pytest.mark.skipif(not pg_available(), reason="PostgreSQL 15 server binaries are not installed"),
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed"),
]

CACHES_FOR_A_MINUTE = {"DAC_TOKEN_CACHE_SECONDS": "60", "DAC_SETTINGS_CACHE_SECONDS": "60", "DAC_QUOTA_LIMITS_CACHE_SECONDS": "60"}


@pytest.fixture(scope="module")
def serving():
    base = Path(tempfile.mkdtemp(prefix="dac-forget-"))
    os.chmod(base, 0o755)  # the postgres system user must reach its cluster folder inside
    pg, redis = PgCluster(base), RedisServer()
    serving = None
    try:
        pg.init().start()
        redis.start()
        serving = DacProcess(base, pg=pg, redis_url=redis.url, extra_env=CACHES_FOR_A_MINUTE)
        serving.prepare()
        serving.start()
        serving.redis = redis
        yield serving
    finally:
        if serving is not None:
            serving.stop()
        redis.kill()
        pg.destroy()
        shutil.rmtree(base, ignore_errors=True)


def _chat(dac: DacProcess) -> httpx.Response:
    return httpx.post(f"{dac.url}/v1/chat/completions", headers={"Authorization": f"Bearer {dac.token}"}, timeout=20,
                      json={"model": "auto", "messages": [{"role": "user", "content": "hello"}]})


def _within(seconds: float, check) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def test_a_limit_set_by_a_command_is_applied_by_a_serving_worker_at_once(serving):
    before = _chat(serving)
    assert before.status_code == 200, before.text
    assert before.headers["x-ratelimit-limit-requests"] != "7"
    serving.manage("set_limits", "acme", "--requests", "7")  # another process: it tells the workers
    assert _within(3, lambda: _chat(serving).headers.get("x-ratelimit-limit-requests") == "7")


def test_a_token_revoked_in_another_process_is_refused_by_a_serving_worker_at_once(serving):
    assert _chat(serving).status_code == 200  # verified: this worker now remembers the token
    # An owner revokes it in a process of its own (as a page of another worker would).
    serving.manage("shell", "-c", (
        "from audit.services import Actor\n"
        "from tenants.context import tenant_context\n"
        "from tenants.management.commands._helpers import org_by_slug\n"
        "from tenants.models import ApiToken\n"
        "from tenants.services import api_token_revoke\n"
        "org = org_by_slug('acme', command='test')\n"
        "with tenant_context(org):\n"
        "    for token in ApiToken.objects.all():\n"
        "        api_token_revoke(token=token, actor=Actor.system('test'))\n"
    ))
    assert _within(3, lambda: _chat(serving).status_code == 401)


def test_the_serving_worker_hears_again_once_redis_is_back(serving):
    assert _chat(serving).status_code == 401  # the previous test revoked the token
    serving.token = serving.manage("create_api_token", "acme", "again").strip().splitlines()[-1]
    serving.redis.kill()
    serving.redis.start()  # empty, on the same port: the worker's listener reconnects by itself
    assert _within(10, lambda: _chat(serving).status_code == 200)  # (its quota falls back meanwhile)
    serving.manage("set_limits", "acme", "--requests", "9")
    assert _within(5, lambda: _chat(serving).headers.get("x-ratelimit-limit-requests") == "9")
