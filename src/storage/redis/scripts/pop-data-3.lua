-- Read a value and delete it in the same step: from its own key if it has
-- one (a result with a time to live, then also dropped from the expiry
-- index), else from the data hash.
-- KEYS[1] data hash
-- KEYS[2] the value's own key
-- KEYS[3] expiry index
-- ARGV[1] field
-- Returns the value, or nil.
local value = redis.call('GET', KEYS[2])
if value then
  redis.call('DEL', KEYS[2])
  redis.call('ZREM', KEYS[3], ARGV[1])
  return value
end
value = redis.call('HGET', KEYS[1], ARGV[1])
if value then
  redis.call('HDEL', KEYS[1], ARGV[1])
end
return value
