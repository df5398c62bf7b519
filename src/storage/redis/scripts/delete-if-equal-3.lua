-- Delete a value only while it still holds the given one: a lock is released
-- only by the holder whose token it carries. The value is read where
-- peek-data-2.lua reads it: its own key first (a result with a time to
-- live), else the data hash.
-- KEYS[1] data hash
-- KEYS[2] the value's own key
-- KEYS[3] expiry index
-- ARGV[1] field
-- ARGV[2] expected value
-- Returns 1 when deleted, 0 otherwise.
local own = redis.call('GET', KEYS[2])
if own then
  if own ~= ARGV[2] then
    return 0
  end
  redis.call('DEL', KEYS[2])
  redis.call('ZREM', KEYS[3], ARGV[1])
  return 1
end
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
