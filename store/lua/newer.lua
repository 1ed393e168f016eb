-- newer(a, b): true if version a is newer than b, false if not, nil if they cannot be
-- ordered (either is not a decimal integer: then only equality means anything).
-- resourceVersions are etcd revisions, decimal integers that may exceed 2^53 (a Lua
-- number's exact range), so they compare as strings: by length, then digit by digit.
-- Prepended to the scripts that order versions (scripts.py), so it is written once.
local function newer(a, b)
  if not (string.match(a, '^%d+$') and string.match(b, '^%d+$')) then return nil end
  a = (string.gsub(a, '^0+', ''))
  b = (string.gsub(b, '^0+', ''))
  if #a ~= #b then return #a > #b end
  return a > b
end
