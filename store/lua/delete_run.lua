-- A run dropped and a tombstone left, so a late mirror write cannot bring it back.
-- A delete older than the run stored (a run re-created under the same name) is a no-op;
-- a tombstone already newer (or `*`, the API's) is kept as it is.
-- Needs newer.lua.
-- KEYS: run hash, tasks hash, logs hash, runs zset, tombstone.
-- ARGV: run id, the version deleted at ("*": any, the API's delete), tombstone seconds.
local mark = ARGV[2]
local held = redis.call('HGET', KEYS[1], 'version')
if held and mark ~= '*' and newer(held, mark) == true then return 0 end
local tomb = redis.call('GET', KEYS[5])
if tomb and (tomb == '*' or newer(tomb, mark) == true) then mark = tomb end
local existed = redis.call('EXISTS', KEYS[1])
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('SET', KEYS[5], mark, 'EX', tonumber(ARGV[3]))
return existed
