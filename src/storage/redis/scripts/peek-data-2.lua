-- Read a value without removing it: from its own key if it has one (a
-- result with a time to live), else from the data hash.
-- KEYS[1] data hash
-- KEYS[2] the value's own key
-- ARGV[1] field
-- Returns the value, or nil.
local value = redis.call('GET', KEYS[2])
if value then
  return value
end
return redis.call('HGET', KEYS[1], ARGV[1])
