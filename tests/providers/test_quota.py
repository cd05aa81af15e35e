"""Quotas: reserve, reconcile, release, limits, key tests, headers, reset_limits, and the
PostgreSQL fallback with its way back to Redis. Every test talks to a redis-server of its own
(never the shared one on 6379) and to the test database as the runtime role."""

from __future__ import annotations

import asyncio
import io
import logging
import time
from datetime import UTC, datetime

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from audit.models import AuditLog
from audit.services import Actor
from dac.db.rls import rls_problems
from dac.errors import RateLimited, api_exception_handler
from providers.models import QuotaCounter, QuotaLimit
from providers.services import quota
from providers.services.limits import quota_limit_set
from providers.services.quota import (
    QuotaExceeded,
    QuotaService,
    estimate_tokens,
    key_test_reserve,
    quota_reconcile,
    quota_release,
    quota_reserve,
    quota_reset,
    quota_store_state,
    quota_usage,
    rate_limit_headers,
)
from tenants.context import tenant_context
from tests.servers import RedisServer, free_port

pytestmark = pytest.mark.django_db

# 2026-11-26 20:48:00 UTC: the next UTC midnight is 3 h 12 min away.
EVENING = datetime(2026, 11, 26, 20, 48, tzinfo=UTC).timestamp()


@pytest.fixture(scope="session")
def redis_server():
    server = RedisServer().start()
    yield server
    server.kill()


@pytest.fixture
def own_redis():
    """A server this test may kill, pause and restart."""
    server = RedisServer().start()
    yield server
    server.kill()


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def _fresh_limits():
    quota._limits_cache.clear()
    yield
    quota._limits_cache.clear()


@pytest.fixture
def service(redis_server, monkeypatch):
    """The module-level API, pointed at our own Redis."""
    redis_server.client().flushall()
    svc = QuotaService(redis_url=redis_server.url)
    monkeypatch.setattr(quota, "_service", svc)
    return svc


def _limits(org, provider: str = "", *, requests=None, tokens=None) -> None:
    with tenant_context(org):
        quota_limit_set(org_id=org.id, provider=provider, requests_per_day=requests, tokens_per_day=tokens, actor=Actor.system("test"))


def _today() -> str:
    return datetime.now(UTC).date().isoformat()


def _run(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


# -- reserving, settling, limits ------------------------------------------------------------------


def test_a_reservation_counts_one_request_and_the_estimated_tokens(service, org_a):
    reservation = quota_reserve(org_id=org_a.id, provider="openai", estimated_tokens=250)
    assert (reservation.org_id, reservation.provider, reservation.tokens, reservation.store) == (org_a.id, "openai", 250, "redis")
    assert reservation.day.isoformat() == _today()
    assert (reservation.usage.requests_used, reservation.usage.tokens_used, reservation.usage.remaining_requests) == (1, 250, 999)
    usage = quota_usage(org_id=org_a.id, provider="openai")
    assert (usage.requests_used, usage.tokens_used) == (1, 250)
    assert (usage.requests_limit, usage.tokens_limit) == (1000, 100_000)
    assert (usage.remaining_requests, usage.remaining_tokens) == (999, 99_750)


def test_the_call_past_the_request_limit_gets_a_429_naming_the_limit_and_when_it_resets(redis_server, org_a, monkeypatch):
    redis_server.client().flushall()
    svc = QuotaService(redis_url=redis_server.url, clock=Clock(EVENING))
    monkeypatch.setattr(quota, "_service", svc)
    redis_server.client().hset(f"dac:q:{{org:{org_a.id}}}:openai:2026-11-26", mapping={"r": 999, "t": 0, "v": 1})
    quota_reserve(org_id=org_a.id, provider="openai", estimated_tokens=1)
    with pytest.raises(QuotaExceeded) as caught:
        quota_reserve(org_id=org_a.id, provider="openai", estimated_tokens=1)
    exc = caught.value
    assert isinstance(exc, RateLimited)
    assert (exc.status, exc.code, exc.provider, exc.limit_kind) == (429, "quota_exceeded", "openai", "requests")
    assert exc.message == "Daily request limit of 1,000 for openai reached; it resets at 00:00 UTC (in 3 h 12 min)."
    assert exc.retry_after == 3 * 3600 + 12 * 60
    assert exc.headers == {"Retry-After": "11520"}
    response = api_exception_handler(exc, {})
    assert response.status_code == 429 and response["Retry-After"] == "11520"
    assert response.data["error"]["code"] == "quota_exceeded"
    assert svc.usage(org_id=org_a.id, provider="openai").requests_used == 1000


def test_a_call_whose_token_estimate_does_not_fit_is_refused_and_counts_nothing(service, org_a):
    _limits(org_a, tokens=1000)
    quota_reserve(org_id=org_a.id, provider="openai", estimated_tokens=800)
    with pytest.raises(QuotaExceeded, match=r"Daily token limit of 1,000 for openai reached: 200 tokens left, this request may use up to 300; it resets at 00:00 UTC") as caught:
        quota_reserve(org_id=org_a.id, provider="openai", estimated_tokens=300)
    assert caught.value.limit_kind == "tokens"
    usage = quota_usage(org_id=org_a.id, provider="openai")
    assert (usage.requests_used, usage.tokens_used) == (1, 800)
    quota_reserve(org_id=org_a.id, provider="openai", estimated_tokens=200)


def test_a_request_bigger_than_the_whole_daily_limit_is_a_400_without_retry_after(service, org_a):
    """A 429 'resets at 00:00 UTC' with a Retry-After of hours: clients waited and retried, and it
    failed the same way the next day."""
    _limits(org_a, tokens=1000)
    with pytest.raises(QuotaExceeded) as caught:
        quota_reserve(org_id=org_a.id, provider="openai", estimated_tokens=1026)
    refused = caught.value
    assert (refused.status, refused.code, refused.headers) == (400, "request_over_daily_limit", {})
    assert refused.message == ("This request may use up to 1,026 tokens (its prompt and max_tokens), more than the daily token "
                               "limit of 1,000 for openai: lower max_tokens, or ask an admin to raise the limit.")
    assert quota_usage(org_id=org_a.id, provider="openai").requests_used == 0
    _limits(org_a, tokens=0)  # no tokens at all for this provider: lowering max_tokens would not help
    with pytest.raises(QuotaExceeded) as caught:
        quota_reserve(org_id=org_a.id, provider="openai", estimated_tokens=10)
    assert caught.value.code == "provider_turned_off" and "lower max_tokens" not in caught.value.message


@pytest.mark.parametrize("limit", ["requests", "tokens"])
def test_a_limit_of_0_turns_the_provider_off_without_a_reset_to_wait_for(service, org_a, limit):
    """A limit of 0 is how an admin turns a provider off; it was a 429 'resets at 00:00 UTC' with a
    Retry-After of hours, and clients waited to be refused again."""
    _limits(org_a, **{limit: 0})
    with pytest.raises(QuotaExceeded) as caught:
        quota_reserve(org_id=org_a.id, provider="openai", estimated_tokens=10)
    refused = caught.value
    assert (refused.status, refused.code, refused.headers, refused.retry_after) == (403, "provider_turned_off", {}, None)
    assert refused.message == (f"openai is turned off for this organization: its daily {limit[:-1]} limit is 0. Pick another "
                               "provider, or ask an admin to raise the limit.")


def test_reconcile_replaces_the_estimate_with_the_reported_tokens_and_none_keeps_it(service, org_a):
    first = quota_reserve(org_id=org_a.id, provider="openai", estimated_tokens=1000)
    quota_reconcile(first, actual_tokens=130)
    second = quota_reserve(org_id=org_a.id, provider="openai", estimated_tokens=500)
    quota_reconcile(second, actual_tokens=None)
    third = quota_reserve(org_id=org_a.id, provider="openai", estimated_tokens=10)
    quota_reconcile(third, actual_tokens=60)  # providers may use more than estimated
    assert quota_usage(org_id=org_a.id, provider="openai").tokens_used == 130 + 500 + 60


def test_a_failed_call_gives_back_its_request_and_tokens_and_settling_twice_changes_nothing(service, org_a):
    _limits(org_a, requests=1)
    reservation = quota_reserve(org_id=org_a.id, provider="gemini", estimated_tokens=400)
    quota_release(reservation)
    quota_release(reservation)
    quota_reconcile(reservation, actual_tokens=5000)
    usage = quota_usage(org_id=org_a.id, provider="gemini")
    assert (usage.requests_used, usage.tokens_used) == (0, 0)
    kept = quota_reserve(org_id=org_a.id, provider="gemini", estimated_tokens=400)
    quota_reconcile(kept, actual_tokens=100)
    quota_release(kept)  # already settled: the call happened
    assert quota_usage(org_id=org_a.id, provider="gemini").requests_used == 1


def test_counters_are_per_org_and_per_provider(service, org_a, org_b):
    _limits(org_a, requests=1)
    _limits(org_b, requests=1)
    quota_reserve(org_id=org_a.id, provider="openai", estimated_tokens=1)
    with pytest.raises(QuotaExceeded):
        quota_reserve(org_id=org_a.id, provider="openai", estimated_tokens=1)
    quota_reserve(org_id=org_a.id, provider="perplexity", estimated_tokens=1)
    quota_reserve(org_id=org_b.id, provider="openai", estimated_tokens=1)


def test_a_warm_check_is_one_redis_round_trip_per_operation_and_no_database_query(service, org_a, monkeypatch, django_assert_num_queries):
    quota_release(quota_reserve(org_id=org_a.id, provider="openai", estimated_tokens=5))  # loads the scripts
    quota_reconcile(quota_reserve(org_id=org_a.id, provider="openai", estimated_tokens=5), actual_tokens=1)
    quota_usage(org_id=org_a.id, provider="openai")
    sent = []
    execute = service.redis.client.execute_command
    monkeypatch.setattr(service.redis.client, "execute_command", lambda *args, **kw: sent.append(args[0]) or execute(*args, **kw))
    with django_assert_num_queries(0):
        reservation = quota_reserve(org_id=org_a.id, provider="openai", estimated_tokens=5)
        quota_reconcile(reservation, actual_tokens=3)
        quota_usage(org_id=org_a.id, provider="openai")
        quota_release(quota_reserve(org_id=org_a.id, provider="openai", estimated_tokens=5))
    assert sent == ["EVALSHA"] * 5


def test_a_provider_override_beats_the_org_wide_limit_and_applies_at_once(service, org_a):
    assert quota_usage(org_id=org_a.id, provider="openai").requests_limit == 1000  # now cached
    _limits(org_a, requests=5, tokens=7000)
    _limits(org_a, "openai", requests=1)
    openai = quota_usage(org_id=org_a.id, provider="openai")
    gemini = quota_usage(org_id=org_a.id, provider="gemini")
    assert (openai.requests_limit, openai.tokens_limit) == (1, 7000)
    assert (gemini.requests_limit, gemini.tokens_limit) == (5, 7000)
    quota_reserve(org_id=org_a.id, provider="openai", estimated_tokens=1)
    with pytest.raises(QuotaExceeded, match="Daily request limit of 1 for openai"):
        quota_reserve(org_id=org_a.id, provider="openai", estimated_tokens=1)


def test_counters_are_hash_tagged_by_org_and_expire_at_the_next_utc_midnight(service, redis_server, org_a):
    quota_reserve(org_id=org_a.id, provider="openai", estimated_tokens=42)
    key_test_reserve(org_id=org_a.id)
    client = redis_server.client()
    key = f"dac:q:{{org:{org_a.id}}}:openai:{_today()}"
    assert client.hgetall(key) == {"r": "1", "t": "42", "v": "1"}
    midnight = (int(time.time()) // 86_400 + 1) * 86_400
    assert client.expiretime(key) == midnight
    hour = datetime.now(UTC).hour
    key_test_key = f"dac:q:{{org:{org_a.id}}}:key_tests:{hour:02d}:{_today()}"
    assert client.hget(key_test_key, "r") == "1"
    assert client.expiretime(key_test_key) == midnight - 86_400 + (hour + 1) * 3_600


def test_usage_gives_the_rate_limit_headers(service, org_a):
    _limits(org_a, requests=5, tokens=100)
    quota_reserve(org_id=org_a.id, provider="openai", estimated_tokens=30)
    headers = rate_limit_headers(quota_usage(org_id=org_a.id, provider="openai"))
    reset = headers.pop("X-RateLimit-Reset")
    assert headers == {
        "X-RateLimit-Limit-Requests": "5",
        "X-RateLimit-Remaining-Requests": "4",
        "X-RateLimit-Limit-Tokens": "100",
        "X-RateLimit-Remaining-Tokens": "70",
    }
    seconds_to_midnight = 86_400 - int(time.time()) % 86_400
    assert abs(int(reset) - seconds_to_midnight) <= 2


def test_key_tests_are_capped_per_hour_and_do_not_use_the_call_quota(redis_server, org_a, org_b, settings, monkeypatch):
    settings.DAC_KEY_TESTS_PER_HOUR = 3
    redis_server.client().flushall()
    monkeypatch.setattr(quota, "_service", QuotaService(redis_url=redis_server.url, clock=Clock(EVENING)))
    for _ in range(3):
        key_test_reserve(org_id=org_a.id)
    with pytest.raises(QuotaExceeded) as caught:
        key_test_reserve(org_id=org_a.id)
    assert caught.value.message == "Hourly limit of 3 key tests reached; it resets at 21:00 UTC (in 12 min)."
    assert (caught.value.limit_kind, caught.value.retry_after, caught.value.status) == ("key_tests", 720, 429)
    key_test_reserve(org_id=org_b.id)
    for provider in ("openai", "gemini"):
        assert quota_usage(org_id=org_a.id, provider=provider).requests_used == 0


def test_estimate_is_a_quarter_of_the_prompt_characters_plus_the_answer_budget(settings):
    assert estimate_tokens("x" * 400, 100) == 200
    assert estimate_tokens("abc", 10) == 11  # a started token counts
    assert estimate_tokens("", None) == 1 + 1024
    messages = [{"role": "system", "content": "a" * 40}, {"role": "user", "content": [{"type": "text", "text": "b" * 40}]}]
    assert estimate_tokens(messages, None) == 20 + 1024
    settings.DAC_DEFAULT_MAX_TOKENS = 50
    assert estimate_tokens("x" * 8, None) == 2 + 50


def test_an_unknown_provider_is_refused(service, org_a):
    with pytest.raises(Exception, match="Unknown provider 'skynet'"):
        quota_reserve(org_id=org_a.id, provider="skynet", estimated_tokens=1)


# -- on the event loop (quota_reserve_async and friends) -------------------------------------------


@pytest.fixture
def pool_calls(monkeypatch):
    """What the async API handed to the thread pool (db_step), by function name."""
    calls: list[str] = []
    original = quota.db_step

    async def recording(fn, *args, **kwargs):
        calls.append(fn.__name__)
        return await original(fn, *args, **kwargs)

    monkeypatch.setattr(quota, "db_step", recording)
    return calls


def test_on_the_event_loop_a_warm_reservation_and_its_settlement_use_no_thread(service, redis_server, org_a, pool_calls):
    _limits(org_a, tokens=1000)
    service.limits(org_id=org_a.id, provider="openai")  # cached, as after any earlier call

    async def calls():
        first = await quota.quota_reserve_async(org_id=org_a.id, provider="openai", estimated_tokens=600)
        await quota.quota_reconcile_async(first, actual_tokens=150)
        failed = await quota.quota_reserve_async(org_id=org_a.id, provider="openai", estimated_tokens=300)
        await quota.quota_release_async(failed)
        await quota.quota_release_async(failed)  # settled: nothing more
        with pytest.raises(QuotaExceeded, match="Daily token limit of 1,000 for openai reached: 850 tokens left, this request may use up to 900"):
            await quota.quota_reserve_async(org_id=org_a.id, provider="openai", estimated_tokens=900)
        return first, failed

    first, failed = asyncio.run(calls())
    assert (first.store, first.tokens, first.settled, first.usage.tokens_used) == ("redis", 150, True, 600)
    assert failed.settled
    assert redis_server.client().hmget(f"dac:q:{{org:{org_a.id}}}:openai:{_today()}", "r", "t") == ["1", "150"]
    assert pool_calls == []


@pytest.mark.django_db(transaction=True)
def test_on_the_event_loop_limits_not_yet_cached_are_loaded_on_the_pool(service, org_a, pool_calls):
    _limits(org_a, requests=5)
    quota._limits_cache.clear()
    reservation = asyncio.run(quota.quota_reserve_async(org_id=org_a.id, provider="openai", estimated_tokens=10))
    assert (reservation.store, reservation.usage.requests_limit) == ("redis", 5)
    assert pool_calls == ["reserve"]
    asyncio.run(quota.quota_reserve_async(org_id=org_a.id, provider="openai", estimated_tokens=10))
    assert pool_calls == ["reserve"]  # cached since


@pytest.fixture
def own_service(own_redis, org_a, monkeypatch):
    """The quota service on a Redis of the test's own, with org A's openai limits cached."""
    svc = QuotaService(redis_url=own_redis.url, probe_interval=60)
    monkeypatch.setattr(quota, "_service", svc)
    _limits(org_a, requests=5)
    svc.limits(org_id=org_a.id, provider="openai")
    return svc


@pytest.mark.django_db(transaction=True)
def test_on_the_event_loop_an_unreachable_redis_switches_the_worker_to_postgres(own_service, own_redis, org_a, pool_calls):
    svc = own_service

    async def calls():
        kept = await quota.quota_reserve_async(org_id=org_a.id, provider="openai", estimated_tokens=100)
        own_redis.kill()
        during = await quota.quota_reserve_async(org_id=org_a.id, provider="openai", estimated_tokens=100)
        await quota.quota_reconcile_async(kept, actual_tokens=40)
        await quota.quota_release_async(during)
        return kept, during

    kept, during = asyncio.run(calls())
    assert (kept.store, during.store) == ("redis", "postgres")
    assert svc.state()["degraded"] and kept.settled and during.settled
    assert pool_calls[0] == "_after_redis_failed" and set(pool_calls[1:]) <= {"reconcile", "release"}
    usage = svc.usage(org_id=org_a.id, provider="openai")  # what Redis held, carried over: 1 request, 40 tokens
    assert (usage.requests_used, usage.tokens_used, usage.store) == (1, 40, "postgres")


@pytest.mark.django_db(transaction=True)
def test_on_the_event_loop_a_hung_redis_switches_the_worker_to_postgres_within_the_timeout(own_service, own_redis, org_a, pool_calls):
    """Redis stops answering (paused) with a connection open: the script gives up after the
    loop client's socket timeout (0.5 s), as a redis-py error, and the call is counted in
    PostgreSQL."""
    async def calls():
        await quota.quota_reserve_async(org_id=org_a.id, provider="openai", estimated_tokens=10)
        own_redis.pause()
        try:
            started = time.monotonic()
            during = await quota.quota_reserve_async(org_id=org_a.id, provider="openai", estimated_tokens=10)
            return during, time.monotonic() - started
        finally:
            own_redis.resume()

    during, waited = asyncio.run(calls())
    assert during.store == "postgres" and own_service.state()["degraded"]
    assert own_service.state()["last_error"].startswith("TimeoutError: ")
    assert 0.4 < waited < 1.5
    assert pool_calls[0] == "_after_redis_failed"


@pytest.mark.django_db(transaction=True)
def test_on_the_event_loop_a_redis_restarted_while_idle_is_used_again_at_once(own_service, own_redis, org_a, pool_calls):
    """The loop's idle connection died with the restart: the next script goes out on a new one,
    the worker stays on Redis, and Redis gets back the count it lost (restarted empty)."""
    svc = own_service

    async def calls():
        before = await quota.quota_reserve_async(org_id=org_a.id, provider="openai", estimated_tokens=10)
        own_redis.kill()
        own_redis.start()
        after = await quota.quota_reserve_async(org_id=org_a.id, provider="openai", estimated_tokens=10)
        return before, after

    before, after = asyncio.run(calls())
    assert (before.store, after.store) == ("redis", "redis")
    assert not svc.state()["degraded"] and pool_calls == []
    assert after.usage.requests_used == 2


@pytest.mark.django_db(transaction=True)
def test_on_the_event_loop_a_script_redis_lost_is_loaded_again(service, redis_server, org_a, pool_calls):
    _limits(org_a, requests=5)
    service.limits(org_id=org_a.id, provider="openai")

    async def calls():
        await quota.quota_reserve_async(org_id=org_a.id, provider="openai", estimated_tokens=10)
        redis_server.client().script_flush()
        return await quota.quota_reserve_async(org_id=org_a.id, provider="openai", estimated_tokens=10)

    second = asyncio.run(calls())
    assert (second.store, second.usage.requests_used) == ("redis", 2)
    assert pool_calls == []


# -- the PostgreSQL fallback and the way back ------------------------------------------------------


def _store_records(caplog, text: str) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == "dac.quota" and text in record.getMessage()]


def test_with_redis_unreachable_quotas_hold_in_postgres_and_the_switch_is_logged_once(org_a, org_b, monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="dac.quota")
    svc = QuotaService(redis_url=f"redis://127.0.0.1:{free_port()}/0", probe_interval=60)
    monkeypatch.setattr(quota, "_service", svc)
    _limits(org_a, requests=3)
    first = quota_reserve(org_id=org_a.id, provider="openai", estimated_tokens=100)
    assert first.store == "postgres"
    quota_reconcile(first, actual_tokens=40)
    failed = quota_reserve(org_id=org_a.id, provider="openai", estimated_tokens=100)
    quota_release(failed)
    quota_reserve(org_id=org_a.id, provider="openai", estimated_tokens=100)
    quota_reserve(org_id=org_a.id, provider="openai", estimated_tokens=100)
    with pytest.raises(QuotaExceeded, match="Daily request limit of 3 for openai reached"):
        quota_reserve(org_id=org_a.id, provider="openai", estimated_tokens=100)
    usage = quota_usage(org_id=org_a.id, provider="openai")
    assert (usage.requests_used, usage.tokens_used, usage.store) == (3, 240, "postgres")
    state = quota_store_state()
    assert (state["backend"], state["degraded"]) == ("postgres", True)
    assert "ConnectionError" in state["last_error"] and state["since"] <= datetime.now(UTC)
    assert len(_store_records(caplog, "Quota store degraded")) == 1
    # The rows are org A's alone: org B's context sees none of them.
    with tenant_context(org_b), connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM providers_quotacounter")
        assert cursor.fetchone()[0] == 0
    with tenant_context(org_a):
        assert QuotaCounter.objects.get(provider="openai").requests == 3


def test_the_fallback_table_has_forced_row_level_security(org_a, monkeypatch):
    monkeypatch.setattr(quota, "_service", QuotaService(redis_url=f"redis://127.0.0.1:{free_port()}/0"))
    quota_reserve(org_id=org_a.id, provider="openai", estimated_tokens=1)
    with connection.cursor() as cursor:
        problems = rls_problems(cursor, settings.DATABASES["default"]["USER"])
        assert not [problem for problem in problems if "providers_quotacounter" in problem]
        cursor.execute("SELECT count(*) FROM providers_quotacounter")  # no org set
        assert cursor.fetchone()[0] == 0


def test_redis_is_probed_at_most_every_few_seconds_and_counts_carry_over_when_it_returns(own_redis, org_a, caplog):
    caplog.set_level(logging.INFO, logger="dac.quota")
    tick = Clock(1000.0)
    svc = QuotaService(redis_url=own_redis.url, probe_interval=5, monotonic=tick)
    _limits(org_a, requests=7)
    for _ in range(3):
        assert svc.reserve(org_id=org_a.id, provider="openai", estimated_tokens=10).store == "redis"
    own_redis.kill()
    for _ in range(2):
        assert svc.reserve(org_id=org_a.id, provider="openai", estimated_tokens=10).store == "postgres"
    own_redis.start()  # empty: no persistence
    tick.now += 4.9  # not yet time to probe
    assert svc.reserve(org_id=org_a.id, provider="openai", estimated_tokens=10).store == "postgres"
    assert svc.state()["backend"] == "postgres"
    tick.now += 0.2
    assert svc.reserve(org_id=org_a.id, provider="openai", estimated_tokens=10).store == "redis"
    assert svc.state() | {"since": None} == {"backend": "redis", "degraded": False, "since": None, "last_error": svc.state()["last_error"], "probe_interval": 5.0}
    assert own_redis.client().hmget(f"dac:q:{{org:{org_a.id}}}:openai:{_today()}", "r", "t") == ["7", "70"]
    with pytest.raises(QuotaExceeded):
        svc.reserve(org_id=org_a.id, provider="openai", estimated_tokens=10)
    assert len(_store_records(caplog, "Quota store degraded")) == 1
    assert len(_store_records(caplog, "Quota store back on Redis")) == 1


def test_a_worker_still_on_postgres_returns_to_redis_as_soon_as_it_meets_a_carried_row(own_redis, org_a):
    ticks = Clock(0.0), Clock(0.0)
    first, second = (QuotaService(redis_url=own_redis.url, probe_interval=60, monotonic=tick) for tick in ticks)
    _limits(org_a, requests=6)
    first.reserve(org_id=org_a.id, provider="openai", estimated_tokens=1)
    second.reserve(org_id=org_a.id, provider="openai", estimated_tokens=1)
    own_redis.kill()
    assert first.reserve(org_id=org_a.id, provider="openai", estimated_tokens=1).store == "postgres"
    assert second.reserve(org_id=org_a.id, provider="openai", estimated_tokens=1).store == "postgres"
    own_redis.start()
    ticks[0].now = 61
    assert first.reserve(org_id=org_a.id, provider="openai", estimated_tokens=1).store == "redis"
    # The second worker's probe is a minute away, but the row it counts in has moved.
    assert second.reserve(org_id=org_a.id, provider="openai", estimated_tokens=1).store == "redis"
    assert second.state()["backend"] == "redis"
    with pytest.raises(QuotaExceeded):
        second.reserve(org_id=org_a.id, provider="openai", estimated_tokens=1)
    assert first.usage(org_id=org_a.id, provider="openai").requests_used == 6


def test_a_worker_that_meets_a_carried_row_but_cannot_reach_redis_takes_the_row_back(own_redis, org_a):
    ticks = Clock(0.0), Clock(0.0)
    first, second = (QuotaService(redis_url=own_redis.url, probe_interval=60, monotonic=tick) for tick in ticks)
    for _ in range(2):
        first.reserve(org_id=org_a.id, provider="openai", estimated_tokens=1)
    own_redis.kill()
    first.reserve(org_id=org_a.id, provider="openai", estimated_tokens=1)  # 3, in PostgreSQL
    second.reserve(org_id=org_a.id, provider="openai", estimated_tokens=1)  # 4
    own_redis.start()
    ticks[0].now = 61
    assert first.reserve(org_id=org_a.id, provider="openai", estimated_tokens=1).store == "redis"  # 5
    own_redis.kill()  # down again before the second worker noticed it was back
    assert second.reserve(org_id=org_a.id, provider="openai", estimated_tokens=1).store == "postgres"  # 6
    assert first.reserve(org_id=org_a.id, provider="openai", estimated_tokens=1).store == "postgres"  # 7
    assert first.usage(org_id=org_a.id, provider="openai").requests_used == 7
    with tenant_context(org_a):
        assert not QuotaCounter.objects.get(provider="openai").moved


def test_an_outage_that_keeps_redis_data_adds_only_what_was_counted_meanwhile(own_redis, org_a):
    tick = Clock(0.0)
    svc = QuotaService(redis_url=own_redis.url, probe_interval=5, monotonic=tick)
    other = QuotaService(redis_url=own_redis.url, probe_interval=5, monotonic=tick)
    for _ in range(3):
        reservation = other.reserve(org_id=org_a.id, provider="openai", estimated_tokens=10)
    assert svc.usage(org_id=org_a.id, provider="openai").requests_used == 3  # svc's view: 3
    other.release(reservation)  # Redis now holds 2, a fresher state svc has not seen
    own_redis.pause()
    try:
        assert svc.usage(org_id=org_a.id, provider="openai").store == "postgres"  # times out, switches
        svc.reserve(org_id=org_a.id, provider="openai", estimated_tokens=10)
        svc.reserve(org_id=org_a.id, provider="openai", estimated_tokens=10)
    finally:
        own_redis.resume()
    tick.now += 5
    usage = svc.usage(org_id=org_a.id, provider="openai")
    # Redis kept its data and is fresher than svc's view: its 2, plus the 2 counted meanwhile.
    assert (usage.store, usage.requests_used, usage.tokens_used) == ("redis", 4, 40)


def _worker_that_counted(redis_server, org, calls: int) -> tuple[QuotaService, Clock]:
    """A worker (probing Redis every 5 s of its own clock) that has counted `calls` on Redis."""
    tick = Clock(0.0)
    worker = QuotaService(redis_url=redis_server.url, probe_interval=5, monotonic=tick)
    for _ in range(calls):
        worker.reserve(org_id=org.id, provider="openai", estimated_tokens=10)
    return worker, tick


def test_a_reset_during_an_outage_is_not_undone_when_redis_returns(own_redis, org_a):
    svc, tick = _worker_that_counted(own_redis, org_a, 3)
    own_redis.pause()
    try:
        svc.usage(org_id=org_a.id, provider="openai")
        with tenant_context(org_a):
            reset = svc.reset(org_id=org_a.id, provider=None)
        assert [(c.provider, c.requests, c.tokens) for c in reset] == [("openai", 3, 30)]
        assert svc.reserve(org_id=org_a.id, provider="openai", estimated_tokens=10).store == "postgres"
    finally:
        own_redis.resume()
    tick.now += 5
    usage = svc.usage(org_id=org_a.id, provider="openai")
    assert (usage.store, usage.requests_used, usage.tokens_used) == ("redis", 1, 10)


def test_a_worker_that_stays_on_redis_forgets_the_counters_of_past_days(redis_server, org_a):
    """Its view of each counter (kept to restore a Redis that restarts empty) grew by one entry
    per org, counter and day for as long as the worker ran."""
    clock = Clock(EVENING)
    svc = QuotaService(redis_url=redis_server.url, clock=clock)
    for _ in range(5):
        svc.reconcile(svc.reserve(org_id=org_a.id, provider="openai", estimated_tokens=10), actual_tokens=4)
        clock.now += 86_400
    assert sorted({day for _, _, day in svc.redis.seen}) == [
        datetime.fromtimestamp(clock.now - 2 * 86_400, UTC).date().isoformat(),
        datetime.fromtimestamp(clock.now - 86_400, UTC).date().isoformat()]


def test_redis_restarted_empty_between_calls_gets_back_what_this_worker_saw(own_redis, org_a, caplog):
    caplog.set_level(logging.INFO, logger="dac.quota")
    svc = QuotaService(redis_url=own_redis.url)
    for _ in range(4):
        svc.reserve(org_id=org_a.id, provider="openai", estimated_tokens=5)
    own_redis.kill()
    own_redis.start()  # no call saw it go: redis-py just reconnects
    assert svc.reserve(org_id=org_a.id, provider="openai", estimated_tokens=5).store == "redis"
    usage = svc.usage(org_id=org_a.id, provider="openai")
    assert (usage.requests_used, usage.tokens_used) == (5, 25)
    assert len(_store_records(caplog, "Redis had lost quota counter")) == 1


# -- manage.py reset_limits and set_limits ---------------------------------------------------------


def _spend(org, provider: str, calls: int) -> None:
    for _ in range(calls):
        quota_reserve(org_id=org.id, provider=provider, estimated_tokens=100)


def test_reset_limits_resets_one_orgs_counters_and_says_what_it_reset(service, org_a, org_b):
    _spend(org_a, "openai", 2)
    _spend(org_a, "gemini", 1)
    _spend(org_b, "openai", 1)
    out = _run("reset_limits", "org-a")
    assert "org-a / openai: 2 requests, 200 tokens -> 0" in out
    assert "org-a / gemini: 1 requests, 100 tokens -> 0" in out
    assert "Reset 2 counter(s) of org-a (all providers)" in out
    assert quota_usage(org_id=org_a.id, provider="openai").requests_used == 0
    assert quota_usage(org_id=org_b.id, provider="openai").requests_used == 1
    with tenant_context(org_a):
        assert AuditLog.objects.filter(event="quota.reset").count() == 1


def test_reset_limits_names_the_key_tests_allowance_as_such(service, org_a):
    """It listed the internal counter name ("org-a / key_tests:08: 1 requests, 0 tokens")."""
    key_test_reserve(org_id=org_a.id)
    hour = timezone.now().strftime("%H")
    out = _run("reset_limits", "org-a")
    assert f"org-a / key tests of {hour}:00-{hour}:59 UTC: 1 tests -> 0" in out and "key_tests:" not in out


def test_reset_limits_for_one_provider_leaves_the_others(service, org_a):
    _spend(org_a, "openai", 2)
    _spend(org_a, "gemini", 1)
    out = _run("reset_limits", "org-a", "--provider", "openai")
    assert "Reset 1 counter(s) of org-a (openai)" in out
    assert quota_usage(org_id=org_a.id, provider="openai").requests_used == 0
    assert quota_usage(org_id=org_a.id, provider="gemini").requests_used == 1
    assert "Nothing to reset" in _run("reset_limits", "org-a", "--provider", "openai")


def test_reset_limits_without_an_org_resets_every_org(service, org_a, org_b):
    _spend(org_a, "openai", 1)
    _spend(org_b, "perplexity", 3)
    out = _run("reset_limits")
    assert "org-b / perplexity: 3 requests, 300 tokens -> 0" in out
    assert "Reset 2 counter(s) of every organization (all providers)" in out
    assert quota_usage(org_id=org_b.id, provider="perplexity").requests_used == 0
    assert quota_reset(org_id=org_a.id, provider=None) == 0


def test_reset_limits_that_cannot_reach_redis_changes_nothing_and_says_so(service, org_a, monkeypatch):
    """The workers count in Redis; a reset run where Redis cannot be reached said "Nothing to
    reset" and left zero rows in PostgreSQL that, once a worker fell back to PostgreSQL and
    returned, wiped the day's counts (a limit of 10 let 17 calls through)."""
    _spend(org_a, "openai", 3)
    blind = QuotaService(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    monkeypatch.setattr(quota, "_service", blind)
    with pytest.raises(CommandError, match=r"cannot be reached from here .*nothing was reset.*--redis-down"):
        _run("reset_limits", "org-a")
    with tenant_context(org_a):
        assert not QuotaCounter.objects.exists()
        assert not AuditLog.objects.filter(event="quota.reset").exists()
    monkeypatch.setattr(quota, "_service", service)
    assert quota_usage(org_id=org_a.id, provider="openai").requests_used == 3


def test_reset_limits_with_redis_down_resets_the_counts_kept_in_postgresql(own_redis, org_a, monkeypatch):
    """When Redis is down for every worker they count in PostgreSQL: --redis-down resets those,
    and the reset holds when Redis returns."""
    worker, tick = _worker_that_counted(own_redis, org_a, 2)
    own_redis.pause()
    try:
        worker.reserve(org_id=org_a.id, provider="openai", estimated_tokens=10)  # falls back, counts 3 in PostgreSQL
        monkeypatch.setattr(quota, "_service", QuotaService(redis_url=own_redis.url))
        out = _run("reset_limits", "org-a", "--redis-down")
    finally:
        own_redis.resume()
    assert "org-a / openai: 3 requests, 30 tokens -> 0" in out
    tick.now += 5
    usage = worker.usage(org_id=org_a.id, provider="openai")
    assert (usage.store, usage.requests_used, usage.tokens_used) == ("redis", 0, 0)


@pytest.mark.parametrize(("args", "message"), [(("nope",), "No organization"), (("org-a", "--provider", "skynet"), "Unknown provider")])
def test_reset_limits_refuses_an_unknown_org_or_provider_and_changes_nothing(service, org_a, args, message):
    _spend(org_a, "openai", 2)
    with pytest.raises(CommandError, match=message):
        _run("reset_limits", *args)
    assert quota_usage(org_id=org_a.id, provider="openai").requests_used == 2


@pytest.mark.parametrize("value", ["-5", "12.5", "lots", "", "99999999999999"])
def test_set_limits_refuses_bad_token_limits_and_the_quota_in_force_stays(service, org_a, value):
    with pytest.raises(CommandError, match="tokens_per_day"):
        _run("set_limits", "org-a", "--provider", "openai", "--tokens", value)
    with tenant_context(org_a):
        assert not QuotaLimit.objects.exists()
    assert quota_usage(org_id=org_a.id, provider="openai").tokens_limit == 100_000


def test_set_limits_needs_a_limit_to_set(org_a):
    with pytest.raises(CommandError, match="Give --requests, --tokens or both"):
        _run("set_limits", "org-a")
