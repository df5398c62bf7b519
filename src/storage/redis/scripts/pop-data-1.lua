-- Read a field of the data hash and delete it in the same step.
-- KEYS[1] data hash
-- ARGV[1] field
-- Returns the value, or nil.
local value = redis.call('HGET', KEYS[1], ARGV[1])
if value then
  redis.call('HDEL', KEYS[1], ARGV[1])
end
return value
