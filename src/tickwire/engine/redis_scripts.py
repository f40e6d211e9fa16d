"""The engine's Lua scripts: each runs atomically in Redis, on Redis's own clock.

Scripts name keys of other gateways (`WS_ACQUIRE`, `WATCHERS`) from the prefix, so the
engine needs a standalone Redis or Valkey server, not Redis Cluster. Times are Redis's
(`TIME`), so machines whose clocks differ still agree on leases and rate windows.

A gateway's own keys (its WebSocket counts, its watched codes) always hold the member
`WHOLE`, written with the rest whenever the gateway writes them whole. A script that would
change one of them answers -1 when that key is missing instead of creating it: Redis lost
it (restarted empty), and a key made of the changes since would undercount until the
gateway noticed. On -1 the gateway writes the key whole from its own counts.
"""

from __future__ import annotations

WHOLE = "~"
"""A member no IP address or product code can be: a gateway's key was written whole."""

_NOW_MS = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
"""

PUBLISH = """
-- KEYS[1] latest hash; ARGV: channel, header, n published pairs, then pairs (code, body):
-- the n published, then those only stored as the newest quote
local n = tonumber(ARGV[3])
for i = 4, #ARGV, 1000 do
  redis.call('HSET', KEYS[1], unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
if n > 0 then
  redis.call('PUBLISH', ARGV[1], ARGV[2] .. '\\0' .. table.concat(ARGV, '\\0', 4, 3 + 2 * n))
end
return n
"""

BARS = """
-- KEYS: K-line windows; ARGV per key: bars kept, count, then count (open_ms, bar) pairs.
-- A bar replaces the one of the same open time (the forming one, or one filled again).
local a = 1
for _, key in ipairs(KEYS) do
  local keep, count = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  a = a + 2
  for _ = 1, count do
    redis.call('ZREMRANGEBYSCORE', key, ARGV[a], ARGV[a])
    redis.call('ZADD', key, ARGV[a], ARGV[a + 1])
    a = a + 2
  end
  redis.call('ZREMRANGEBYRANK', key, 0, -keep - 1)
end
return #KEYS
"""

HOLD = """
-- KEYS[1] the ingest's hold; ARGV: its id, lease ms. Taken or renewed: 1; else the holder.
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return holder end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

LET_GO = """
-- KEYS[1] the ingest's hold; ARGV[1] its id
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

ALLOW = """
-- KEYS: the allow-list, its version; ARGV: version, the encoded list, channel.
-- Stored and announced only when newer than the one stored: a late write never undoes.
local stored = tonumber(redis.call('GET', KEYS[2]) or '-1')
if tonumber(ARGV[1]) <= stored then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('SET', KEYS[2], ARGV[1])
redis.call('PUBLISH', ARGV[3], ARGV[2])
return 1
"""

WATCH = """
-- KEYS[1] the gateway's watched codes; ARGV: 'w' or 'u', code, lease ms, channel, gateway
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if ARGV[1] == 'w' then redis.call('SADD', KEYS[1], ARGV[2])
else redis.call('SREM', KEYS[1], ARGV[2]) end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PUBLISH', ARGV[4], ARGV[1] .. '\\0' .. ARGV[5] .. '\\0' .. ARGV[2])
return 1
"""

HEARTBEAT = _NOW_MS + """
-- KEYS: the registry of gateways, this one's WebSocket counts, its watched codes;
-- ARGV: gateway, lease ms. Whether each of its keys still exists (else it is written again).
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 3600000)
return {redis.call('PEXPIRE', KEYS[2], ARGV[2]), redis.call('PEXPIRE', KEYS[3], ARGV[2])}
"""

WS_ACQUIRE = _NOW_MS + """
-- KEYS[1] the registry; ARGV: prefix, gateway, ip, cap, lease ms.
-- The IP's WebSockets on every live gateway; one more on this one unless at the cap (1, else
-- 0), or -1 when this gateway's counts are missing.
local own = ARGV[1] .. ':gw:' .. ARGV[2] .. ':ws'
if redis.call('EXISTS', own) == 0 then return -1 end
local total = 0
local function add(gateway)
  local n = redis.call('HGET', ARGV[1] .. ':gw:' .. gateway .. ':ws', ARGV[3])
  if n then total = total + tonumber(n) end
end
add(ARGV[2])
for _, gateway in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], now, '+inf')) do
  if gateway ~= ARGV[2] then add(gateway) end
end
if total >= tonumber(ARGV[4]) then return 0 end
redis.call('HINCRBY', own, ARGV[3], 1)
redis.call('PEXPIRE', own, ARGV[5])
return 1
"""

WS_RELEASE = """
-- KEYS[1] this gateway's WebSocket counts; ARGV[1] ip. -1 when the counts are missing.
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if redis.call('HINCRBY', KEYS[1], ARGV[1], -1) <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end
return 1
"""

RATE = """
-- KEYS: counters; ARGV: limit, window ms. A sliding window of request times per key (us);
-- one request counted for every key, or none when any is at the limit: then
-- {indexes over, microseconds until one fits}.
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local limit, window = tonumber(ARGV[1]), tonumber(ARGV[2]) * 1000
local over, wait, counts = {}, 0, {}
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  local n = redis.call('ZCARD', key)
  counts[i] = n
  if n >= limit then
    over[#over + 1] = i - 1
    local first = redis.call('ZRANGE', key, n - limit, n - limit, 'WITHSCORES')
    wait = math.max(wait, tonumber(first[2]) + window - now)
  end
end
if #over > 0 then return {over, wait} end
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, now, string.format('%.0f:%d', now, counts[i]))
  redis.call('PEXPIRE', key, tonumber(ARGV[2]) + 1000)
end
return {{}, 0}
"""

WATCHERS = _NOW_MS + """
-- KEYS[1] the registry; ARGV: prefix, WHOLE. Each live gateway and the codes it watches:
-- {gateway, count, codes..., gateway, count, codes...}
local out = {}
for _, gateway in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], now, '+inf')) do
  local codes = {}
  for _, code in ipairs(redis.call('SMEMBERS', ARGV[1] .. ':gw:' .. gateway .. ':watch')) do
    if code ~= ARGV[2] then codes[#codes + 1] = code end
  end
  out[#out + 1] = gateway
  out[#out + 1] = #codes
  for _, code in ipairs(codes) do out[#out + 1] = code end
end
return out
"""
