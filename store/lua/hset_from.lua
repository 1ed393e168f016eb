-- hset_from(key, first): HSET `key` with ARGV[first], ARGV[first + 1], ... as field/value
-- pairs, 1,000 values (500 pairs) a call: unpack() of a run's thousands of task entries at
-- once would overflow Lua's stack. Prepended to the scripts that write task phases
-- (scripts.py), so it is written once.
local function hset_from(key, first)
  local i = first
  while i <= #ARGV do
    local last = math.min(i + 999, #ARGV)
    redis.call('HSET', key, unpack(ARGV, i, last))
    i = last + 1
  end
end
