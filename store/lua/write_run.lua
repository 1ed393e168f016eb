-- A whole run written: the local backend's create (no version) or a mirror write (the
-- WorkflowRun's resourceVersion). A mirror write is a no-op, publishing nothing, unless
-- its version is newer than the one stored and newer than a tombstone's; a version that
-- cannot be ordered is written only when it differs from the one stored, never over a
-- tombstone. So the mirror never goes backwards, whatever order writes arrive in.
-- Needs newer.lua.
-- KEYS: run hash, tasks hash, runs zset, tombstone, events channel, namespaces set.
-- ARGV: run id, score, ttl ("0": keep), replace tasks ("1"/"0"), event JSON or "",
--       version or "" (none: the local backend's), namespace,
--       number of run-field pairs, run pairs..., task pairs...
local version = ARGV[6]
local tomb = redis.call('GET', KEYS[4])
if tomb then
  if version == '' or newer(version, tomb) ~= true then return 0 end
  redis.call('DEL', KEYS[4])
end
if version ~= '' then
  local held = redis.call('HGET', KEYS[1], 'version')
  if held then
    local is_newer = newer(version, held)
    if is_newer == false or (is_newer == nil and version == held) then return 0 end
  end
end
local first_task = 9 + 2 * tonumber(ARGV[8])
redis.call('HSET', KEYS[1], unpack(ARGV, 9, first_task - 1))
if ARGV[4] == '1' then redis.call('DEL', KEYS[2]) end
hset_from(KEYS[2], first_task)
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
redis.call('SADD', KEYS[6], ARGV[7])
local ttl = tonumber(ARGV[3])
if ttl > 0 then
  redis.call('EXPIRE', KEYS[1], ttl)
  redis.call('EXPIRE', KEYS[2], ttl)
else
  redis.call('PERSIST', KEYS[1])
  redis.call('PERSIST', KEYS[2])
end
if ARGV[5] ~= '' then redis.call('PUBLISH', KEYS[5], ARGV[5]) end
return 1
