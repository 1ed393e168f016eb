-- A cached result, written with its TTL and marked as used now; past the namespace's
-- bound, the least recently used members are taken off the index and returned, for the
-- caller to delete their entries (their keys are built by keys.py, not here).
-- KEYS: the entry, the namespace's index (sorted set).
-- ARGV: the entry's member (its digest), the entry (JSON), TTL seconds, now in
--       milliseconds, max entries, the index's own TTL in seconds.
redis.call('SET', KEYS[1], ARGV[2], 'EX', tonumber(ARGV[3]))
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[6]))
local over = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[5])
if over > 0 then
  local popped = redis.call('ZPOPMIN', KEYS[2], over)
  local evicted = {}
  for i = 1, #popped, 2 do evicted[#evicted + 1] = popped[i] end
  return evicted
end
return {}
