"""Quota counters in Redis: one hash per (org, bucket, UTC day), one Lua script per operation.

Key: `dac:q:{org:42}:openai:2026-11-26`, fields `r` (requests), `t` (tokens) and `v` (how many
writes the key has seen: a version). The `{org:42}` hash tag puts every key of an org in one
Redis Cluster slot, so a script may touch several of them (reset). Keys expire at the next UTC
midnight (key tests: at the end of their hour).

Every reply carries (r, t, v) and each worker keeps the last reply per key (`seen`). The version
says which of several workers' views is the freshest: at a switch to PostgreSQL the freshest
view becomes the fallback's base, and on return a Redis that kept its data (v at least the
base's) is trusted over the base.

A Redis restarted without persistence comes back empty, and redis-py reconnects silently, so no
error tells us. Each call therefore passes the worker's view of its key: a script that finds
its key missing restores that view before applying the operation. On the day a key belongs to
it is never legitimately missing: reset writes zeros, it does not delete.
"""

from __future__ import annotations

import logging
from datetime import date, timedelta

import redis.asyncio
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError

from providers.quota_store import OK, OVER_REQUESTS, OVER_TOKENS, CounterRow, Counts, Outcome, expires_at

logger = logging.getLogger("dac.quota")

# Shared head: load (r, t, v) of KEYS[1]; when missing, restore the view passed in ARGV[f..f+2]
# (v -1: this worker has none). Defines r, t, v and restored.
_LOAD = """
local f = %d
local cur = redis.call('HMGET', KEYS[1], 'r', 't', 'v')
local r, t, v = tonumber(cur[1]), tonumber(cur[2]) or 0, tonumber(cur[3]) or 0
local restored = 0
if r == nil then
  r, t, v = 0, 0, 0
  if tonumber(ARGV[f + 2]) >= 0 then
    r, t, v, restored = tonumber(ARGV[f]), tonumber(ARGV[f + 1]), tonumber(ARGV[f + 2]), 1
  end
end
"""

# ARGV: requests_limit, tokens_limit, tokens, expire_at, view r, t, v.
# Returns {status (1 ok, 0 over requests, -1 over tokens), r, t, v, restored}.
RESERVE = _LOAD % 5 + """
if r + 1 > tonumber(ARGV[1]) or t + tonumber(ARGV[3]) > tonumber(ARGV[2]) then
  if restored == 1 then
    redis.call('HSET', KEYS[1], 'r', r, 't', t, 'v', v)
    redis.call('EXPIREAT', KEYS[1], ARGV[4])
  end
  if r + 1 > tonumber(ARGV[1]) then return {0, r, t, v, restored} end
  return {-1, r, t, v, restored}
end
r, t, v = r + 1, t + tonumber(ARGV[3]), v + 1
redis.call('HSET', KEYS[1], 'r', r, 't', t, 'v', v)
redis.call('EXPIREAT', KEYS[1], ARGV[4])
return {1, r, t, v, restored}
"""

# ARGV: requests delta, tokens delta, expire_at, view r, t, v. Reconcile (0, actual - estimate)
# and release (-1, -tokens). Returns {r, t, v}, or nil when the key is gone and this worker
# never saw it (it expired at midnight: nothing left to adjust).
_ADJUST = _LOAD % 4 + """
if cur[1] == false and restored == 0 then return nil end
r = math.max(0, r + tonumber(ARGV[1]))
t = math.max(0, t + tonumber(ARGV[2]))
v = v + 1
redis.call('HSET', KEYS[1], 'r', r, 't', t, 'v', v)
redis.call('EXPIREAT', KEYS[1], ARGV[3])
return {r, t, v}
"""
RECONCILE = "-- reconcile\n" + _ADJUST
RELEASE = "-- release\n" + _ADJUST

# ARGV: view r, t, v. Returns {r, t, v} (the view when the key is gone).
READ = _LOAD % 1 + """
return {r, t, v}
"""

# KEYS: counters of one org; ARGV[i]: expire_at of KEYS[i]. Zeroes each (keeping the key, so no
# worker restores it) and returns the {r, t} each held.
RESET = """
local out = {}
for i, key in ipairs(KEYS) do
  local cur = redis.call('HMGET', key, 'r', 't')
  out[i] = {tonumber(cur[1]) or 0, tonumber(cur[2]) or 0}
  redis.call('HSET', key, 'r', 0, 't', 0)
  redis.call('HINCRBY', key, 'v', 1)
  redis.call('EXPIREAT', key, ARGV[i])
end
return out
"""

# ARGV: base r, t, v, counted r, t, overwrite (1/0), expire_at. Carries a fallback row in: the
# base is replaced by what Redis holds when Redis is at least as fresh (it kept its data),
# else Redis lost it and the larger of the two stands; then what PostgreSQL counted is added. A
# reset during the outage (overwrite) starts from zero.
MERGE = """
local cur = redis.call('HMGET', KEYS[1], 'r', 't', 'v')
local cr, ct, cv = tonumber(cur[1]) or 0, tonumber(cur[2]) or 0, tonumber(cur[3]) or 0
local br, bt, bv = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local r, t
if ARGV[6] == '1' then r, t = 0, 0
elseif cv >= bv then r, t = cr, ct
else r, t = math.max(cr, br), math.max(ct, bt) end
r = math.max(0, r + tonumber(ARGV[4]))
t = math.max(0, t + tonumber(ARGV[5]))
local v = math.max(cv, bv) + 1
redis.call('HSET', KEYS[1], 'r', r, 't', t, 'v', v)
redis.call('EXPIREAT', KEYS[1], ARGV[7])
return {r, t, v}
"""

_NONE = (-1, -1, -1)  # no view of the key


class RedisStore:
    name = "redis"

    def __init__(self, client, *, prefix: str = "dac:q") -> None:
        self.client = client
        self.prefix = prefix
        self._reserve = client.register_script(RESERVE)
        self._reconcile = client.register_script(RECONCILE)
        self._release = client.register_script(RELEASE)
        self._read = client.register_script(READ)
        self._reset = client.register_script(RESET)
        self._merge = client.register_script(MERGE)
        # (org_id, bucket, day) -> (requests, tokens, version) as Redis last reported them here:
        # today's and yesterday's (a call that began before midnight settles on its day's key).
        self.seen: dict[tuple[int, str, str], tuple[int, int, int]] = {}
        self._newest_day = ""

    def _remember(self, ident: tuple[int, str, str], view: tuple[int, int, int]) -> None:
        """Keep Redis's last reply for a counter; on the first reply of a new day, forget the
        counters of the days before yesterday (a worker that stays on Redis for months would
        otherwise keep one entry per org, counter and day it ever served)."""
        self.seen[ident] = view
        day = ident[2]
        if day > self._newest_day:
            self._newest_day = day
            yesterday = (date.fromisoformat(day) - timedelta(days=1)).isoformat()
            for old in [old for old in list(self.seen) if old[2] < yesterday]:
                self.seen.pop(old, None)

    def key(self, org_id: int, bucket: str, day: str) -> str:
        return f"{self.prefix}:{{org:{org_id}}}:{bucket}:{day}"

    def reserve(self, org_id: int, bucket: str, day: str, *, tokens: int, requests_limit: int, tokens_limit: int, expire_at: int) -> Outcome:
        ident, view, keys, args = self._reserve_call(org_id, bucket, day, tokens, requests_limit, tokens_limit, expire_at)
        return self._reserved(ident, view, self._reserve(keys=keys, args=args))

    async def reserve_async(self, client, org_id: int, bucket: str, day: str, *, tokens: int, requests_limit: int, tokens_limit: int, expire_at: int) -> Outcome:
        """`reserve` on the event loop, with `client` a redis.asyncio client of the same Redis."""
        ident, view, keys, args = self._reserve_call(org_id, bucket, day, tokens, requests_limit, tokens_limit, expire_at)
        return self._reserved(ident, view, await client.run(self._reserve, keys, args))

    def _reserve_call(self, org_id, bucket, day, tokens, requests_limit, tokens_limit, expire_at):
        ident = (org_id, bucket, day)
        view = self.seen.get(ident, _NONE)
        return ident, view, [self.key(*ident)], [requests_limit, tokens_limit, tokens, expire_at, *view]

    def _reserved(self, ident: tuple[int, str, str], view: tuple[int, int, int], reply) -> Outcome:
        status, requests, used_tokens, version, restored = reply
        if restored:
            self._log_restored(ident, view)
        self._remember(ident, (requests, used_tokens, version))
        return Outcome(OK if status == 1 else OVER_REQUESTS if status == 0 else OVER_TOKENS, requests, used_tokens)

    def reconcile(self, org_id: int, bucket: str, day: str, *, token_delta: int, expire_at: int) -> Counts | None:
        ident, keys, args = self._adjust_call((org_id, bucket, day), 0, token_delta, expire_at)
        return self._adjusted(ident, self._reconcile(keys=keys, args=args))

    def release(self, org_id: int, bucket: str, day: str, *, tokens: int, expire_at: int) -> Counts | None:
        ident, keys, args = self._adjust_call((org_id, bucket, day), -1, -tokens, expire_at)
        return self._adjusted(ident, self._release(keys=keys, args=args))

    async def reconcile_async(self, client, org_id: int, bucket: str, day: str, *, token_delta: int, expire_at: int) -> Counts | None:
        ident, keys, args = self._adjust_call((org_id, bucket, day), 0, token_delta, expire_at)
        return self._adjusted(ident, await client.run(self._reconcile, keys, args))

    async def release_async(self, client, org_id: int, bucket: str, day: str, *, tokens: int, expire_at: int) -> Counts | None:
        ident, keys, args = self._adjust_call((org_id, bucket, day), -1, -tokens, expire_at)
        return self._adjusted(ident, await client.run(self._release, keys, args))

    def _adjust_call(self, ident: tuple[int, str, str], requests: int, tokens: int, expire_at: int):
        return ident, [self.key(*ident)], [requests, tokens, expire_at, *self.seen.get(ident, _NONE)]

    def _adjusted(self, ident: tuple[int, str, str], result) -> Counts | None:
        if result is None:
            return None
        self._remember(ident, (result[0], result[1], result[2]))
        return Counts(result[0], result[1])

    def read(self, org_id: int, bucket: str, day: str) -> Counts:
        ident = (org_id, bucket, day)
        requests, tokens, version = self._read(keys=[self.key(*ident)], args=list(self.seen.get(ident, _NONE)))
        if version:
            self._remember(ident, (requests, tokens, version))
        return Counts(requests, tokens)

    def reset(self, targets: dict[int, list[str]], day: str) -> list[tuple[int, str, Counts]]:
        """Zero the named buckets of each org (one script per org, one round trip for all)."""
        pipe = self.client.pipeline(transaction=False)
        order = list(targets.items())
        for org_id, buckets in order:
            keys = [self.key(org_id, bucket, day) for bucket in buckets]
            self._reset(keys=keys, args=[expires_at(bucket, day) for bucket in buckets], client=pipe)
        before = []
        for (org_id, buckets), counts in zip(order, pipe.execute(), strict=True):
            for bucket, (requests, tokens) in zip(buckets, counts, strict=True):
                self.seen.pop((org_id, bucket, day), None)
                before.append((org_id, bucket, Counts(requests, tokens)))
        return before

    def merge(self, rows: list[CounterRow]) -> list[tuple[int, int, int]]:
        """Carry fallback rows into Redis (one script per row, one round trip); returns the
        (r, t, v) each key holds afterwards."""
        if not rows:
            return []
        pipe = self.client.pipeline(transaction=False)
        for row in rows:
            self._merge(
                keys=[self.key(row.org_id, row.bucket, row.day)],
                args=[row.base_requests, row.base_tokens, row.base_version, row.requests, row.tokens,
                      int(row.overwrite), expires_at(row.bucket, row.day)],
                client=pipe,
            )
        merged = [tuple(result) for result in pipe.execute()]
        for row, result in zip(rows, merged, strict=True):
            self._remember((row.org_id, row.bucket, row.day), result)
        return merged

    def ping(self) -> None:
        self.client.ping()

    def seen_on(self, day: str) -> list[tuple[int, str, str, int, int, int]]:
        """This worker's view of each counter of `day` (org, bucket, day, r, t, v); older days
        are forgotten."""
        for ident in [ident for ident in list(self.seen) if ident[2] != day]:
            self.seen.pop(ident, None)
        return [(org_id, bucket, d, *view) for (org_id, bucket, d), view in list(self.seen.items())]

    def _log_restored(self, ident: tuple[int, str, str], view: tuple[int, int, int]) -> None:
        logger.warning(
            "Redis had lost quota counter %s (restarted empty?); restored this worker's last view of it: %s requests, %s tokens.",
            self.key(*ident), view[0], view[1],
        )


class LoopScriptClient:
    """The quota scripts on one event loop, over redis.asyncio connections kept here.

    redis.asyncio's client wraps every command in its pool's lock and checks, a retry wrapper
    and observability hooks: ~0.1 ms of CPU a command against ~0.07 ms for sending it on a
    connection and reading the reply (measured here), and the gateway sends two a call. This
    keeps idle connections in a list (the loop is single-threaded: no lock), runs EVALSHA on one
    and puts it back. A connection that fails is dropped; one that was idle (a Redis restarted
    meanwhile closed it) is replaced once before the error counts. Errors are redis-py's, so
    the callers' switch to PostgreSQL is unchanged; a Redis that lost the script gets it again.
    """

    def __init__(self, url: str, **options) -> None:
        pool = redis.asyncio.ConnectionPool.from_url(url, **options)  # only to read the URL as redis-py does
        self._connection_class, self._connection_kwargs = pool.connection_class, pool.connection_kwargs
        self._idle: list = []

    async def run(self, script, keys: list, args: list):
        connection = self._idle.pop() if self._idle else None
        if connection is not None:
            try:
                return await self._on(connection, script, keys, args)
            except RedisConnectionError:
                pass  # closed while idle: one fresh connection before it counts as a failure
        return await self._on(self._connection_class(**self._connection_kwargs), script, keys, args)

    async def _on(self, connection, script, keys: list, args: list):
        try:
            try:
                reply = await self._evalsha(connection, script, keys, args)
            except NoScriptError:
                await connection.send_command("SCRIPT", "LOAD", script.script)
                await connection.read_response()
                reply = await self._evalsha(connection, script, keys, args)
        except NoScriptError:
            self._idle.append(connection)
            raise
        except BaseException:
            await connection.disconnect(nowait=True)  # a reply may be left unread on it
            raise
        self._idle.append(connection)
        return reply

    @staticmethod
    async def _evalsha(connection, script, keys: list, args: list):
        await connection.send_command("EVALSHA", script.sha, len(keys), *keys, *args)
        return await connection.read_response()
