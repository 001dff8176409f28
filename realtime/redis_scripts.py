"""The broker's Lua scripts: one Redis call each, on the keys of one channel.

Per channel (all keys share the hash tag `{rt:<channel>}`, so one Redis Cluster slot):
  `<prefix>{rt:<channel>}:meta`    hash {epoch, offset}, expires after `meta_ttl_s` idle
  `<prefix>{rt:<channel>}:stream`  stream of {o: offset, p: JSON publication}, capped by
                                   `history_size` entries and `history_ttl_s` age
  `<prefix>{rt:<channel>}`         the pub/sub channel (SPUBLISH/SSUBSCRIBE when sharded)

`PUBLISH` increments the offset, appends to the stream and publishes, so offsets are gapless
and pub/sub order is offset order. Each script creates a new epoch (and deletes stale history)
when the meta hash is gone. `POSITION` reads a channel's position; `RECOVER` reads the
publications after a client's position from the stream, or tells that they cannot all be given.
Their arguments are passed by `RedisBroker` (redis_broker.py).
"""

from __future__ import annotations

# POSITION and RECOVER open the channel's epoch alike (ARGV[1]: a new epoch, ARGV[2]: TTL).
_OPEN_EPOCH = """
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[1]
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'offset', 0)
  redis.call('DEL', KEYS[2])
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
"""

POSITION = _OPEN_EPOCH + """return {epoch, tonumber(redis.call('HGET', KEYS[1], 'offset')) or 0}
"""

PUBLISH = """
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[3]
  redis.call('HSET', KEYS[1], 'epoch', epoch)
  redis.call('DEL', KEYS[2])
end
redis.call('EXPIRE', KEYS[1], ARGV[6])
local order = tonumber(ARGV[8])
local over_gap = order < 0
if over_gap then order = -order end
if order > 0 then
  local last = tonumber(redis.call('HGET', KEYS[1], 'order'))
  if last then
    if order <= last then return {epoch, 0, 1, last} end
    if order > last + 1 and not over_gap then return {epoch, 0, 2, last} end
  end
  redis.call('HSET', KEYS[1], 'order', order)
end
local t = redis.call('TIME')
local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local offset = 0
local head = '{"channel":"' .. ARGV[2] .. '","offset":'
for i = 9, #ARGV do
  offset = redis.call('HINCRBY', KEYS[1], 'offset', 1)
  local payload = head .. offset .. ',"data":' .. ARGV[i] .. '}'
  if tonumber(ARGV[4]) > 0 then
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'o', offset, 'p', payload)
  end
  local msg = epoch .. ' ' .. offset .. ' ' .. ms .. ' \\n' .. payload
  if ARGV[7] == '1' then
    redis.call('SPUBLISH', ARGV[1], msg)
  else
    redis.call('PUBLISH', ARGV[1], msg)
  end
end
if tonumber(ARGV[4]) > 0 then
  redis.call('XTRIM', KEYS[2], 'MINID', '~', ms - tonumber(ARGV[5]))
  redis.call('PEXPIRE', KEYS[2], ARGV[5])
end
return {epoch, offset, 0, order}
"""

RECOVER = _OPEN_EPOCH + """local offset = tonumber(redis.call('HGET', KEYS[1], 'offset')) or 0
local since = tonumber(ARGV[4])
local missing = offset - since
if epoch ~= ARGV[3] or missing < 0 or missing > tonumber(ARGV[5]) then
  return {epoch, offset, 0}
end
local out = {epoch, offset, 1}
if missing == 0 then return out end
local t = redis.call('TIME')
local oldest = tonumber(t[1]) * 1000 - tonumber(ARGV[6])
local entries = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', missing)
if #entries ~= missing then return {epoch, offset, 0} end
for i = #entries, 1, -1 do
  local id = entries[i][1]
  local f = entries[i][2]
  if tonumber(f[2]) ~= since + (#entries - i + 1) then return {epoch, offset, 0} end
  if tonumber(string.match(id, '^(%d+)')) < oldest then return {epoch, offset, 0} end
  out[#out + 1] = f[4]
end
return out
"""
