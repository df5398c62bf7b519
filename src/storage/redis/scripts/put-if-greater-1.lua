-- Raise a counter, never lower it: a high-water mark.
-- KEYS[1] counters hash
-- ARGV[1] field
-- ARGV[2] new value
-- Returns 1 when the field was raised (or set), 0 when it already held as much.
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current and tonumber(current) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
