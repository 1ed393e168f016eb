-- The resync's drop of a run a listing did not contain: only if the listing is proven
-- newer than what is stored (a run with no version, the local backend's, or one whose
-- version cannot be ordered, is never dropped: nothing proves it gone). The listing's
-- version becomes the tombstone, so an older copy of the run stays out.
-- Needs newer.lua.
-- KEYS: run hash, tasks hash, logs hash, runs zset, tombstone.
-- ARGV: run id, the listing's resourceVersion, tombstone seconds.
local held = redis.call('HGET', KEYS[1], 'version')
if not held then
  if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('ZREM', KEYS[4], ARGV[1]) end
  return 0
end
if newer(held, ARGV[2]) ~= false then return 0 end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('SET', KEYS[5], ARGV[2], 'EX', tonumber(ARGV[3]))
return 1
