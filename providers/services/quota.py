"""Daily quotas per org and provider: reserve before a provider call, settle after it.

    reservation = quota_reserve(org_id=org.id, provider="openai", estimated_tokens=estimate_tokens(messages, max_tokens))
    try:
        result = await adapter.complete(...)
    except ProviderError:
        quota_release(reservation)          # the failed call gives back its request and tokens
        raise
    quota_reconcile(reservation, actual_tokens=result.total_tokens)   # None keeps the estimate

Counters live in Redis (one Lua script per operation, one round trip; keys hash-tagged by org
and expiring at the next UTC midnight). When Redis stops answering, the worker logs it once,
writes what it last saw in Redis into PostgreSQL and counts there (an atomic upsert), probing
Redis at most every `DAC_QUOTA_PROBE_SECONDS`. When Redis answers again the first worker to
notice carries the PostgreSQL counts into Redis (max(redis, base) + counted) and marks the
rows moved; any worker still on PostgreSQL that meets a moved row switches back at once. See
docs/quotas.md for the argument that limits hold across the switches.

The functions are synchronous and run in the org's tenant context on their own; none holds a
transaction open. From async code, `quota_reserve_async` / `quota_reconcile_async` /
`quota_release_async` do the same without a thread hop while Redis answers.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from django.conf import settings
from django.db import transaction
from redis.exceptions import (
    ClusterError,
    ConnectionError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisClusterException,
    TimeoutError,
    TryAgainError,
)

from audit.services import Actor, audit_record
from dac.db.steps import db_step
from dac.errors import ApplicationError, Forbidden, RateLimited, ValidationFailed
from dac.org_cache import PerOrgCache
from dac.per_loop import PerLoop
from providers.adapters import PROVIDER_NAMES
from providers.models import QuotaLimit
from providers.quota_store import MOVED, OK, OVER_REQUESTS, Counts, Outcome, expires_at, key_tests_bucket
from providers.quota_store.pg_store import PostgresStore
from providers.quota_store.redis_store import LoopScriptClient, RedisStore
from providers.services.limits import effective_limits
from tenants.context import current_tenant, operator_context, tenant_context

logger = logging.getLogger("dac.quota")

REDIS = "redis"
POSTGRES = "postgres"
# Errors that mean "Redis cannot count right now"; anything else (a script bug) is raised.
REDIS_UNAVAILABLE = (ConnectionError, TimeoutError, ReadOnlyError, OutOfMemoryError, ClusterError, TryAgainError, RedisClusterException)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_PROVIDERS = frozenset(PROVIDER_NAMES)


class QuotaExceeded(RateLimited):
    """429 `quota_exceeded`: the message names the limit and when it resets."""

    status = 429
    code = "quota_exceeded"

    def __init__(self, message: str, *, provider: str, limit_kind: str, limit: int, retry_after: int | None, detail: dict | None = None):
        super().__init__(
            message,
            detail={**(detail or {}), "provider": provider, "limit_kind": limit_kind, "limit": limit, "retry_after": retry_after},
            headers={} if retry_after is None else {"Retry-After": str(retry_after)},
        )
        self.provider = provider
        self.limit_kind = limit_kind  # "requests" | "tokens" | "key_tests"
        self.limit = limit
        self.retry_after = retry_after


class RequestOverDailyLimit(QuotaExceeded):
    """400 `request_over_daily_limit`: this request alone may use more tokens than the provider's
    whole daily limit, so waiting for the reset would not help (a 429 with a Retry-After of hours
    said it would, and clients retried). Still a QuotaExceeded: the next provider is tried."""

    status = 400
    code = "request_over_daily_limit"

    def __init__(self, message: str, *, provider: str, limit: int, tokens: int):
        super().__init__(message, provider=provider, limit_kind="tokens", limit=limit, retry_after=None, detail={"max_tokens": tokens})


class ProviderTurnedOff(QuotaExceeded):
    """403 `provider_turned_off`: the org's daily limit for this provider is 0, which is how an
    admin turns a provider off: no call goes to it until the limit is raised, so waiting for the
    reset would not help (a 429 "resets at 00:00" with a Retry-After said it would). Still a
    QuotaExceeded: the next provider is tried."""

    status = 403
    code = "provider_turned_off"

    def __init__(self, *, provider: str, limit_kind: str):
        super().__init__(
            f"{provider} is turned off for this organization: its daily {limit_kind[:-1]} limit is 0. Pick another provider, "
            "or ask an admin to raise the limit.", provider=provider, limit_kind=limit_kind, limit=0, retry_after=None)


class QuotaStoreBusy(ApplicationError):
    """Counters kept moving between the stores while we tried to count (never seen in tests)."""

    status = 503
    code = "unavailable"


class QuotaStoreUnreachable(ApplicationError):
    """A reset from a process that cannot reach Redis while it is configured: the counters the
    workers keep there can be neither read nor zeroed from here."""

    status = 503
    code = "quota_store_unreachable"


@dataclass
class Reservation:
    org_id: int
    provider: str
    day: date  # UTC day the reservation counts against
    tokens: int  # reserved (estimate; the actual count after reconcile)
    store: str  # "redis" | "postgres": where it was reserved
    bucket: str = ""  # counter name: the provider, or key_tests:HH
    settled: bool = False  # reconciled or released: later calls do nothing
    usage: Usage | None = None  # the counter right after reserving: headers without a round trip


@dataclass(frozen=True)
class Usage:
    requests_used: int
    tokens_used: int
    requests_limit: int
    tokens_limit: int
    reset_at: datetime
    remaining_requests: int = field(init=False)
    remaining_tokens: int = field(init=False)
    provider: str = ""
    store: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "remaining_requests", max(0, self.requests_limit - self.requests_used))
        object.__setattr__(self, "remaining_tokens", max(0, self.tokens_limit - self.tokens_used))


@dataclass(frozen=True)
class ResetCounter:
    org_id: int
    provider: str  # or key_tests:HH
    requests: int
    tokens: int


# Limits are read on every call; an in-process copy for a few seconds spares the database: per
# org, {provider: (requests, tokens)} filled as providers are asked for. Saving or deleting a
# QuotaLimit forgets the org's entry in this process at once (dac/org_cache.py).
_limits_cache: PerOrgCache[dict[str, tuple[int, int]]] = PerOrgCache(
    "quota_limits", QuotaLimit, ttl_setting="DAC_QUOTA_LIMITS_CACHE_SECONDS"
)


def _redis_client_for(url: str):
    import redis

    # Like the django-redis pool: short timeouts, no retries (an outage must show at once).
    return redis.Redis(connection_pool=redis.ConnectionPool.from_url(url, socket_connect_timeout=0.25, socket_timeout=0.5))


class QuotaService:
    """The quota ledger of one worker process. Inject `redis_url` (or `redis_client`) in tests;
    the module-level functions use `default_service()`, built from settings."""

    def __init__(
        self,
        redis_url: str | None = None,
        *,
        redis_client=None,
        key_prefix: str | None = None,
        probe_interval: float | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        db_alias: str = "default",
    ) -> None:
        # The event-loop paths (`reserve_async` …) talk to the same Redis through redis.asyncio,
        # one client per event loop; a service built around an injected client has none.
        self._async_url = None
        if redis_client is None:
            if redis_url is None:
                from django_redis import get_redis_connection

                redis_client = get_redis_connection("default")
                self._async_url = settings.CACHES["default"]["LOCATION"]
            else:
                redis_client = _redis_client_for(redis_url)
                self._async_url = redis_url
        self._async_clients: PerLoop | None = PerLoop(self._new_async_client) if self._async_url else None
        self.redis = RedisStore(redis_client, prefix=key_prefix or getattr(settings, "DAC_QUOTA_KEY_PREFIX", "dac:q"))
        self.pg = PostgresStore(db_alias)
        self.db_alias = db_alias
        self.probe_interval = float(getattr(settings, "DAC_QUOTA_PROBE_SECONDS", 2.0) if probe_interval is None else probe_interval)
        self.key_tests_per_hour = int(getattr(settings, "DAC_KEY_TESTS_PER_HOUR", 30))
        self._clock = clock
        self._monotonic = monotonic
        self._switch = threading.Lock()
        self._degraded = False
        self._since = datetime.fromtimestamp(clock(), UTC)
        self._next_probe = 0.0
        self._last_error = ""
        self._day_cache: tuple[int, str, date] = (-1, "", date.min)

    # -- the API ----------------------------------------------------------------------------

    def reserve(self, *, org_id: int, provider: str, estimated_tokens: int) -> Reservation:
        if provider not in _PROVIDERS:
            raise ValidationFailed(f"Unknown provider {provider!r}.", detail={"provider": "unknown"})
        tokens = max(0, int(estimated_tokens))
        requests_limit, tokens_limit = self.limits(org_id=org_id, provider=provider)
        now = self._clock()
        day_no, day, _ = self._day(now)
        outcome, store = self._reserve(org_id, provider, day, tokens, requests_limit, tokens_limit, (day_no + 1) * 86_400)
        return self._reservation(org_id, provider, tokens, (requests_limit, tokens_limit), now, outcome, store)

    def _reservation(self, org_id: int, provider: str, tokens: int, limits: tuple[int, int], now: float, outcome: Outcome, store: str) -> Reservation:
        """The reservation an outcome stands for, or QuotaExceeded."""
        requests_limit, tokens_limit = limits
        day_no, _, day_date = self._day(now)
        reset_epoch = (day_no + 1) * 86_400
        if outcome.status != OK:
            raise self._exceeded(provider, outcome, tokens, requests_limit, tokens_limit, now, reset_epoch)
        usage = Usage(outcome.requests, outcome.tokens, requests_limit, tokens_limit, datetime.fromtimestamp(reset_epoch, UTC), provider=provider, store=store)
        return Reservation(org_id, provider, day_date, tokens, store, provider, usage=usage)

    def key_test_reserve(self, *, org_id: int) -> Reservation:
        """One key test; at most DAC_KEY_TESTS_PER_HOUR per org and UTC hour."""
        now = self._clock()
        day_no, day, day_date = self._day(now)
        hour = int(now % 86_400) // 3_600
        bucket = key_tests_bucket(hour)
        limit = self.key_tests_per_hour
        end_of_hour = day_no * 86_400 + (hour + 1) * 3_600
        outcome, store = self._reserve(org_id, bucket, day, 0, limit, 1, end_of_hour)
        if outcome.status != OK:
            retry_after = max(1, math.ceil(end_of_hour - now))
            raise QuotaExceeded(
                f"Hourly limit of {limit:,} key tests reached; it resets at {_hhmm(end_of_hour)} UTC (in {_duration(retry_after)}).",
                provider="", limit_kind="key_tests", limit=limit, retry_after=retry_after,
            )
        return Reservation(org_id, "", day_date, 0, store, bucket)

    def reconcile(self, reservation: Reservation, *, actual_tokens: int | None) -> None:
        if reservation.settled:
            return
        if actual_tokens is not None:
            actual = max(0, int(actual_tokens))
            delta = actual - reservation.tokens
            if delta:
                self._adjust(reservation, lambda o, b, d, e: self.redis.reconcile(o, b, d, token_delta=delta, expire_at=e),
                             lambda o, b, d, e: self.pg.reconcile(o, b, d, token_delta=delta, expire_at=e))
            reservation.tokens = actual
        reservation.settled = True

    def release(self, reservation: Reservation) -> None:
        if reservation.settled:
            return
        tokens = reservation.tokens
        self._adjust(reservation, lambda o, b, d, e: self.redis.release(o, b, d, tokens=tokens, expire_at=e),
                     lambda o, b, d, e: self.pg.release(o, b, d, tokens=tokens, expire_at=e))
        reservation.settled = True

    # -- the same on the event loop -------------------------------------------------------------
    # While Redis answers and the org's limits are cached, one script call on the loop's own
    # client: no thread hop. Otherwise (limits to load, Redis away, a service with an injected
    # client) the synchronous method runs on the pool, which loads, switches to PostgreSQL or
    # probes as usual.

    async def reserve_async(self, *, org_id: int, provider: str, estimated_tokens: int) -> Reservation:
        client = self._async_client()
        limits = _limits_cache.cached(org_id, {}).get(provider)
        if client is None or limits is None or self._degraded:
            return await db_step(self.reserve, org_id=org_id, provider=provider, estimated_tokens=estimated_tokens)
        tokens = max(0, int(estimated_tokens))
        now = self._clock()
        day_no, day, _ = self._day(now)
        try:
            outcome = await self.redis.reserve_async(
                client, org_id, provider, day, tokens=tokens, requests_limit=limits[0], tokens_limit=limits[1], expire_at=(day_no + 1) * 86_400,
            )
        except REDIS_UNAVAILABLE as exc:
            return await db_step(self._after_redis_failed, exc, self.reserve, org_id=org_id, provider=provider, estimated_tokens=estimated_tokens)
        return self._reservation(org_id, provider, tokens, limits, now, outcome, REDIS)

    async def reconcile_async(self, reservation: Reservation, *, actual_tokens: int | None) -> None:
        if reservation.settled:
            return
        if actual_tokens is None or max(0, int(actual_tokens)) == reservation.tokens:
            self.reconcile(reservation, actual_tokens=actual_tokens)  # nothing to write: no round trip
            return
        actual = max(0, int(actual_tokens))
        adjust = functools.partial(self.redis.reconcile_async, token_delta=actual - reservation.tokens)
        if await self._adjusted_on_loop(reservation, adjust, self.reconcile, actual_tokens=actual):
            reservation.tokens = actual
            reservation.settled = True

    async def release_async(self, reservation: Reservation) -> None:
        if reservation.settled:
            return
        if await self._adjusted_on_loop(reservation, functools.partial(self.redis.release_async, tokens=reservation.tokens), self.release):
            reservation.settled = True

    async def _adjusted_on_loop(self, reservation: Reservation, adjust, on_pool, **pool_kwargs) -> bool:
        """Run `adjust` (a RedisStore *_async method) on the loop: True. Or, with no client, on
        PostgreSQL or after a Redis error, `on_pool(reservation, …)` on the thread pool, which
        settles the reservation itself: False."""
        client = self._async_client()
        if client is None or self._degraded:
            await db_step(on_pool, reservation, **pool_kwargs)
            return False
        bucket = reservation.bucket or reservation.provider
        try:
            await adjust(client, reservation.org_id, bucket, reservation.day.isoformat(), expire_at=expires_at(bucket, reservation.day))
        except REDIS_UNAVAILABLE as exc:
            await db_step(self._after_redis_failed, exc, on_pool, reservation, **pool_kwargs)
            return False
        return True

    def _after_redis_failed(self, exc: Exception, fn, *args, **kwargs):
        """Redis failed on the loop: switch this worker to PostgreSQL (once), then do it there."""
        self._degrade(exc)
        return fn(*args, **kwargs)

    def _async_client(self):
        return None if self._async_clients is None else self._async_clients.get()

    def _new_async_client(self) -> LoopScriptClient:
        return LoopScriptClient(self._async_url, socket_connect_timeout=0.25, socket_timeout=0.5)

    def usage(self, *, org_id: int, provider: str) -> Usage:
        requests_limit, tokens_limit = self.limits(org_id=org_id, provider=provider)
        day_no, day, _ = self._day(self._clock())

        def on_pg():
            counts, moved = self.pg.read(org_id, provider, day)
            return MOVED if moved else counts

        counts, store = self._run(lambda: self.redis.read(org_id, provider, day), on_pg, (org_id, provider, day))
        return Usage(counts.requests, counts.tokens, requests_limit, tokens_limit,
                     datetime.fromtimestamp((day_no + 1) * 86_400, UTC), provider=provider, store=store)

    def reset(self, *, org_id: int | None, provider: str | None, actor: Actor | None = None,
              redis_down: bool = False) -> list[ResetCounter]:
        """Zero today's counters of one org (or every org, under operator_context) for one
        provider (or all, and the current hour's key tests). Returns those that were in use.

        If Redis cannot be reached and this process had not already switched to PostgreSQL, the
        reset is refused (QuotaStoreUnreachable) and nothing is written: workers that still reach
        Redis count there, so zero rows written in PostgreSQL would reset nothing now and wipe
        their counts whenever one of them later falls back and returns. `redis_down=True` is
        the operator saying Redis is down for every worker: the counts they keep in PostgreSQL
        meanwhile are zeroed, and replace Redis's when it returns."""
        if provider is not None and provider not in _PROVIDERS:
            raise ValidationFailed(f"Unknown provider {provider!r}; use one of {', '.join(PROVIDER_NAMES)}.", detail={"provider": "unknown"})
        now = self._clock()
        _, day, _ = self._day(now)
        buckets = [provider] if provider else [*PROVIDER_NAMES, key_tests_bucket(int(now % 86_400) // 3_600)]
        if org_id is None:
            if not current_tenant().operator:
                raise Forbidden("Resetting every organization's counters runs under operator_context.")
            from tenants.models import Organization

            org_ids = list(Organization.objects.order_by("id").values_list("id", flat=True))
            scope = contextlib.nullcontext()
        else:
            org_ids = [org_id]
            scope = tenant_context(org_id)
        if not org_ids:
            return []
        targets = {oid: buckets for oid in org_ids}
        before: dict[tuple[int, str], Counts] = {}
        with scope:
            redis_before = None
            if self._use_redis():
                try:
                    redis_before = self.redis.reset(targets, day)
                except REDIS_UNAVAILABLE as exc:
                    if not redis_down:
                        raise QuotaStoreUnreachable(
                            f"Redis, where the workers keep today's quota counters, cannot be reached from here "
                            f"({type(exc).__name__}): nothing was reset.", detail={"store": "redis"}) from None
                    self._degrade(exc)
            # With Redis reachable the fallback rows are stale: delete them. Without it, zero
            # rows that will replace Redis' counts when it returns.
            pg_before = self.pg.reset(targets, day, overwrite=redis_before is None)
            for oid, bucket, counts in pg_before + (redis_before or []):
                if counts.requests or counts.tokens:
                    before[(oid, bucket)] = counts
            for oid in org_ids:
                for bucket in buckets:
                    self.redis.seen.pop((oid, bucket, day), None)
        reset = [ResetCounter(oid, bucket, c.requests, c.tokens) for (oid, bucket), c in sorted(before.items())]
        for oid in sorted({counter.org_id for counter in reset}):
            audit_record(
                org_id=oid, actor=actor or Actor.system("quota_reset"), event="quota.reset",
                target=f"provider:{provider or '*'}",
                details={"day": day, "counters": [[c.provider, c.requests, c.tokens] for c in reset if c.org_id == oid]},
            )
        return reset

    def limits(self, *, org_id: int, provider: str) -> tuple[int, int]:
        """(requests, tokens) per day, cached in-process for DAC_QUOTA_LIMITS_CACHE_SECONDS."""
        org_limits = _limits_cache.get(org_id, dict)
        hit = org_limits.get(provider)
        if hit is None:
            with tenant_context(org_id):
                hit = org_limits[provider] = effective_limits(org_id=org_id, provider=provider)
        return hit

    def state(self) -> dict:
        return {
            "backend": POSTGRES if self._degraded else REDIS,
            "degraded": self._degraded,
            "since": self._since,
            "last_error": self._last_error,
            "probe_interval": self.probe_interval,
        }

    # -- switching between the stores --------------------------------------------------------

    def _reserve(self, org_id, bucket, day, tokens, requests_limit, tokens_limit, expire_at) -> tuple[Outcome, str]:
        def on_pg():
            outcome = self.pg.reserve(org_id, bucket, day, tokens=tokens, requests_limit=requests_limit, tokens_limit=tokens_limit, expire_at=expire_at)
            return MOVED if outcome.status == MOVED else outcome

        return self._run(
            lambda: self.redis.reserve(org_id, bucket, day, tokens=tokens, requests_limit=requests_limit, tokens_limit=tokens_limit, expire_at=expire_at),
            on_pg, (org_id, bucket, day),
        )

    def _adjust(self, reservation: Reservation, on_redis, on_pg) -> None:
        bucket = reservation.bucket or reservation.provider
        day = reservation.day.isoformat()
        args = (reservation.org_id, bucket, day, expires_at(bucket, reservation.day))
        self._run(lambda: on_redis(*args), lambda: on_pg(*args), args[:3])

    def _run(self, on_redis, on_pg, ident: tuple[int, str, str]):
        """Run on Redis while it answers, else on PostgreSQL; a moved row means Redis is back."""
        for _ in range(3):
            if self._use_redis():
                try:
                    return on_redis(), REDIS
                except REDIS_UNAVAILABLE as exc:
                    self._degrade(exc)
            result = on_pg()
            if result is not MOVED:
                return result, POSTGRES
            if not self._recover(force=True):
                # Another worker carried the row into Redis, but we cannot reach it: take it back.
                self.pg.claim(*ident, seen=self.redis.seen.get(ident))
        raise QuotaStoreBusy("The quota store is switching over; try again in a moment.")

    def _use_redis(self) -> bool:
        if not self._degraded:
            return True
        if self._monotonic() < self._next_probe:
            return False
        return self._recover()

    def _degrade(self, exc: Exception) -> None:
        with self._switch:
            if self._degraded:
                return
            # Before anyone here counts in PostgreSQL, write down what Redis held as far as this
            # worker knows; the other workers do the same and the base is the largest view.
            self.pg.seed(self.redis.seen_on(self._day(self._clock())[1]))
            self._degraded = True
            self._since = datetime.fromtimestamp(self._clock(), UTC)
            self._last_error = f"{type(exc).__name__}: {exc}"
            self._next_probe = self._monotonic() + self.probe_interval
        logger.warning(
            "Quota store degraded: Redis unreachable (%s); counting in PostgreSQL, probing Redis every %g s.",
            self._last_error, self.probe_interval,
        )

    def _recover(self, *, force: bool = False) -> bool:
        """Probe Redis; if it answers, carry today's fallback rows into it and switch back.
        Only one thread probes at a time; the others stay on PostgreSQL meanwhile."""
        if not self._switch.acquire(blocking=force):
            return not self._degraded
        try:
            if not self._degraded:
                return True
            if not force and self._monotonic() < self._next_probe:
                return False
            self._next_probe = self._monotonic() + self.probe_interval
            try:
                self.redis.ping()
                _, day, _ = self._day(self._clock())
                with transaction.atomic(using=self.db_alias), operator_context(
                    reason="quota store recovered: carrying fallback counters into Redis", actor="quota"
                ):
                    rows = self.pg.take_for_redis(day)
                    self.pg.mark_moved(rows, self.redis.merge(rows))  # commit only once Redis has them
            except REDIS_UNAVAILABLE as exc:
                logger.debug("Redis still unreachable: %s", exc)
                return False
            outage = self._clock() - self._since.timestamp()
            self._degraded = False
            self._since = datetime.fromtimestamp(self._clock(), UTC)
        finally:
            self._switch.release()
        logger.warning("Quota store back on Redis after %.1f s; carried %d counters over from PostgreSQL.", outage, len(rows))
        return True

    # -- helpers -------------------------------------------------------------------------------

    def _day(self, now: float) -> tuple[int, str, date]:
        day_no = int(now // 86_400)
        cached = self._day_cache
        if cached[0] != day_no:
            day_date = date.fromordinal(_EPOCH_ORDINAL + day_no)
            cached = self._day_cache = (day_no, day_date.isoformat(), day_date)
        return cached

    def _exceeded(self, provider, outcome: Outcome, tokens, requests_limit, tokens_limit, now, reset_epoch) -> QuotaExceeded:
        retry_after = max(1, math.ceil(reset_epoch - now))
        resets = f"it resets at {_hhmm(reset_epoch)} UTC (in {_duration(retry_after)})"
        if outcome.status == OVER_REQUESTS and requests_limit == 0 or outcome.status != OVER_REQUESTS and tokens_limit == 0:
            return ProviderTurnedOff(provider=provider, limit_kind="requests" if outcome.status == OVER_REQUESTS else "tokens")
        if outcome.status == OVER_REQUESTS:
            return QuotaExceeded(f"Daily request limit of {requests_limit:,} for {provider} reached; {resets}.",
                                 provider=provider, limit_kind="requests", limit=requests_limit, retry_after=retry_after)
        if 0 < tokens_limit < tokens:
            return RequestOverDailyLimit(
                f"This request may use up to {tokens:,} tokens (its prompt and max_tokens), more than the daily token limit of "
                f"{tokens_limit:,} for {provider}: lower max_tokens, or ask an admin to raise the limit.",
                provider=provider, limit=tokens_limit, tokens=tokens,
            )
        left = max(0, tokens_limit - outcome.tokens)
        needs = f": {left:,} tokens left, this request may use up to {tokens:,}" if left else ""
        return QuotaExceeded(f"Daily token limit of {tokens_limit:,} for {provider} reached{needs}; {resets}.",
                             provider=provider, limit_kind="tokens", limit=tokens_limit, retry_after=retry_after)


def _hhmm(epoch: float) -> str:
    return time.strftime("%H:%M", time.gmtime(epoch))


def _duration(seconds: int) -> str:
    hours, rest = divmod(int(seconds), 3_600)
    minutes = rest // 60
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min"
    return f"{seconds} s"


# -- module-level API (what the send pipeline calls) ---------------------------------------------

_service: QuotaService | None = None
_service_lock = threading.Lock()


def default_service() -> QuotaService:
    global _service
    if _service is None:
        with _service_lock:
            if _service is None:
                _service = QuotaService()
    return _service


def quota_reserve(*, org_id: int, provider: str, estimated_tokens: int) -> Reservation:
    """Reserve one request and the estimated tokens for today; raises QuotaExceeded."""
    return default_service().reserve(org_id=org_id, provider=provider, estimated_tokens=estimated_tokens)


def quota_reconcile(reservation: Reservation, *, actual_tokens: int | None) -> None:
    """Replace the estimate with the tokens the provider reported (None keeps the estimate)."""
    default_service().reconcile(reservation, actual_tokens=actual_tokens)


def quota_release(reservation: Reservation) -> None:
    """The call failed: give back its request and tokens."""
    default_service().release(reservation)


async def quota_reserve_async(*, org_id: int, provider: str, estimated_tokens: int) -> Reservation:
    """`quota_reserve` from async code: on the event loop while Redis answers and the limits are
    cached, else on the pool."""
    return await default_service().reserve_async(org_id=org_id, provider=provider, estimated_tokens=estimated_tokens)


async def quota_reconcile_async(reservation: Reservation, *, actual_tokens: int | None) -> None:
    await default_service().reconcile_async(reservation, actual_tokens=actual_tokens)


async def quota_release_async(reservation: Reservation) -> None:
    await default_service().release_async(reservation)


def key_test_reserve(*, org_id: int) -> Reservation:
    """Count one key test (DAC_KEY_TESTS_PER_HOUR per org and hour); raises QuotaExceeded."""
    return default_service().key_test_reserve(org_id=org_id)


def quota_usage(*, org_id: int, provider: str) -> Usage:
    return default_service().usage(org_id=org_id, provider=provider)


def quota_reset(*, org_id: int | None, provider: str | None, actor: Actor | None = None) -> int:
    """Zero today's counters; how many were in use. org_id None: every org (operator_context)."""
    return len(default_service().reset(org_id=org_id, provider=provider, actor=actor))


def quota_reset_counters(*, org_id: int | None, provider: str | None, actor: Actor | None = None,
                         redis_down: bool = False) -> list[ResetCounter]:
    """Like quota_reset, returning what each counter held (see QuotaService.reset for redis_down)."""
    return default_service().reset(org_id=org_id, provider=provider, actor=actor, redis_down=redis_down)


def quota_store_state() -> dict:
    """{"backend": "redis"|"postgres", "degraded": bool, "since": datetime, "last_error": str, ...}
    for this worker (each worker probes and switches on its own)."""
    return default_service().state()


def rate_limit_headers(usage: Usage) -> dict[str, str]:
    reset = max(0, math.ceil((usage.reset_at - datetime.now(UTC)).total_seconds()))
    return {
        "X-RateLimit-Limit-Requests": str(usage.requests_limit),
        "X-RateLimit-Remaining-Requests": str(usage.remaining_requests),
        "X-RateLimit-Limit-Tokens": str(usage.tokens_limit),
        "X-RateLimit-Remaining-Tokens": str(usage.remaining_tokens),
        "X-RateLimit-Reset": str(reset),
    }


def estimate_tokens(text_or_messages, max_tokens: int | None = None) -> int:
    """Tokens to reserve: the prompt at ~4 characters a token (at least 1) plus the most the
    answer may take (max_tokens, else DAC_DEFAULT_MAX_TOKENS, 1024)."""
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens <= 0:
        max_tokens = int(getattr(settings, "DAC_DEFAULT_MAX_TOKENS", 1024))
    return estimate_prompt_tokens(text_or_messages) + max_tokens


def estimate_prompt_tokens(text_or_messages) -> int:
    """The prompt at ~4 characters a token (at least 1)."""
    return max(1, math.ceil(_chars(text_or_messages) / 4))


def estimate_answer_tokens(text: str) -> int:
    """Answer text at the same ~4 characters a token: what a call that reported no output tokens
    is counted for the text that arrived (a stream cut before its usage came, say)."""
    return math.ceil(len(text) / 4)


def _chars(value) -> int:
    if value is None:
        return 0
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        # a message {"role", "content", "tool_calls"?}, or a content part {"type": "text", "text"}
        if "content" not in value:
            return _chars(value.get("text"))
        calls = value.get("tool_calls") or ()
        return _chars(value["content"]) + sum(len(call["function"]["name"]) + len(call["function"]["arguments"]) for call in calls)
    if isinstance(value, (list, tuple)):
        return sum(_chars(item) for item in value)
    return len(str(value))
