-- One field of a run's hash set, only if the run is still stored: a cancel racing a
-- delete must not leave a hash with that one field behind.
-- KEYS: run hash.
-- ARGV: field, value.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
