-- Delete a field of the data hash only while it still holds the given value:
-- a lock is released only by the holder whose token it carries.
-- KEYS[1] data hash
-- ARGV[1] field
-- ARGV[2] expected value
-- Returns 1 when deleted, 0 otherwise.
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
