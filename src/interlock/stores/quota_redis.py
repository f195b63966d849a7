"""``RedisQuotaStore``: one token bucket shared by every process calling the same upstream.

Every operation is one Lua script, so reading, refilling and taking tokens is atomic across
processes. Time comes from the Redis server's ``TIME``, never from the callers: processes whose
clocks disagree by seconds still share one consistent bucket, and every duration crosses the
wire as "seconds from now". The arithmetic is ``core.bucket.TokenBucket``'s, line for line (the
shared contract suite checks both). One hash per bucket: ``tokens``, ``updated`` (server time up
to which tokens are accounted, in the future while paused), ``paused`` and ``seq``.
"""

from __future__ import annotations

from typing import Any

from ..core.bucket import Grant
from ._redis import RedisStore

__all__ = ["RedisQuotaStore"]

# ARGV: op, rate, capacity, arg, seq, idle_ttl_ms. Returns {granted, wait (string), seq}.
_BUCKET = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local op = ARGV[1]
local rate = tonumber(ARGV[2])
local capacity = tonumber(ARGV[3])
local arg = tonumber(ARGV[4])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'updated', 'paused', 'seq', 'rate', 'capacity')
local tokens = tonumber(state[1])
local updated = tonumber(state[2])
local paused = tonumber(state[3]) or 0
local seq = tonumber(state[4]) or 0
if rate <= 0 then
  -- A caller still probing for the quota: keep the limits whoever learned them stored; with
  -- none stored yet, nothing is known to pace by (each process probes one call at a time).
  rate = tonumber(state[5])
  capacity = tonumber(state[6])
  if rate == nil then
    return {1, '0', seq}
  end
end
if op == 'paused_for' then
  return {0, string.format('%.17g', math.max(0, paused - now)), seq}
end
if tokens == nil then
  tokens = capacity
  updated = now
end
if now > updated then
  tokens = math.min(capacity, tokens + (now - updated) * rate)
  updated = now
end
if tokens > capacity then tokens = capacity end
local result
if op == 'acquire' then
  local start = math.max(now, updated)
  local wait = (start - now) + math.max(0, 1 - tokens) / rate
  if arg >= 0 and wait > arg then
    return {0, string.format('%.17g', wait), seq}
  end
  tokens = tokens - 1
  seq = seq + 1
  result = {1, string.format('%.17g', wait), seq}
elseif op == 'refund' then
  tokens = math.min(capacity, tokens + 1)
  result = {1, '0', seq}
elseif op == 'observe' or op == 'adopt' then
  local estimate = arg - math.max(0, seq - tonumber(ARGV[5]))
  if op == 'adopt' then
    tokens = math.min(capacity, estimate)
  elseif estimate < tokens then
    tokens = estimate
  end
  result = {1, '0', seq}
elseif op == 'pause' then
  tokens = math.min(tokens, 0) + 1
  updated = math.max(updated, now + arg)
  paused = math.max(paused, now + arg)
  result = {1, string.format('%.17g', math.max(0, paused - now)), seq}
else
  return redis.error_reply('unknown quota op ' .. op)
end
-- %.17g: tostring keeps 14 digits, which rounds epoch seconds to 0.1 ms (sometimes upwards,
-- into the future, which would make the next caller wait for nothing).
local function num(v) return string.format('%.17g', v) end
redis.call('HSET', KEYS[1], 'tokens', num(tokens), 'updated', num(updated), 'paused', num(paused), 'seq', seq,
  'rate', num(rate), 'capacity', num(capacity))
redis.call('PEXPIRE', KEYS[1], math.floor(math.max(0, updated - now) * 1000) + tonumber(ARGV[6]))
return result
"""


class RedisQuotaStore(RedisStore):
    """``QuotaStore`` on Redis: one bucket per key shared by every process using the same URL
    and namespace. A bucket untouched for ``idle_ttl`` s (after its pause) expires. Pass
    ``client`` to share a ``redis.asyncio`` client (it is then not closed by ``aclose``).
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        namespace: str = "interlock:quota:",
        idle_ttl: float = 3600.0,
        client: Any = None,
    ) -> None:
        super().__init__(url, namespace=namespace, client=client)
        self._idle_ms = int(idle_ttl * 1000)
        self._script = self._redis.register_script(_BUCKET)

    async def _run(self, key: str, op: str, rate: float, capacity: float, arg: float, seq: int = 0) -> Any:
        return await self._script(
            keys=[self.namespace + key],
            args=[op, repr(float(rate)), repr(float(capacity)), repr(float(arg)), seq, self._idle_ms],
        )

    async def acquire(
        self, key: str, *, rate: float, capacity: float, max_wait: float | None = None
    ) -> Grant:
        """Reserve a token in one script; the wait is measured on the Redis server's clock."""
        granted, wait, seq = await self._run(
            key, "acquire", rate, capacity, -1.0 if max_wait is None else max_wait
        )
        return Grant(float(wait), int(seq), granted=bool(granted))

    async def refund(self, key: str, *, rate: float, capacity: float) -> None:
        """Give back one token (up to capacity)."""
        await self._run(key, "refund", rate, capacity, 0.0)

    async def observe(
        self, key: str, *, remaining: float, seq: int, rate: float, capacity: float, adopt: bool = False
    ) -> None:
        """Lower the balance to what the upstream reported (or set it, with ``adopt``)."""
        await self._run(key, "adopt" if adopt else "observe", rate, capacity, remaining, seq)

    async def pause(self, key: str, seconds: float, *, rate: float, capacity: float) -> float:
        """Empty the bucket and stop granting until ``seconds`` from now on the server's clock."""
        _, left, _ = await self._run(key, "pause", rate, capacity, max(0.0, seconds))
        return float(left)

    async def paused_for(self, key: str) -> float:
        """The pause still to run, on the server's clock."""
        _, left, _ = await self._run(key, "paused_for", 1.0, 1.0, 0.0)
        return float(left)
