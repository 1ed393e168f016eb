-- A status write of the local backend's runner: nothing if the run was deleted (so a
-- runner finishing after a DELETE cannot bring the run back), the expiry once the run
-- finishes, and the event published in the same step.
-- KEYS: run hash, tasks hash, events channel.
-- ARGV: final ("1"/"0"), event JSON, number of run-field pairs, run pairs..., task pairs...
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local pairs_in_run = tonumber(ARGV[3])
local first_task = 4 + 2 * pairs_in_run
redis.call('HSET', KEYS[1], unpack(ARGV, 4, first_task - 1))
hset_from(KEYS[2], first_task)
if ARGV[1] == '1' then
  local ttl = tonumber(redis.call('HGET', KEYS[1], 'ttl'))
  redis.call('EXPIRE', KEYS[1], ttl)
  redis.call('EXPIRE', KEYS[2], ttl)
end
redis.call('PUBLISH', KEYS[3], ARGV[2])
return 1
