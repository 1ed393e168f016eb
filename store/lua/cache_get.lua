-- A cached result, read; a hit is marked as used now (the index orders eviction).
-- KEYS: the entry, the namespace's index (sorted set).
-- ARGV: the entry's member in the index (its digest), now in milliseconds.
local value = redis.call('GET', KEYS[1])
if value then redis.call('ZADD', KEYS[2], 'XX', ARGV[2], ARGV[1]) end
return value
