-- Whether a key holds a value: in its own key (a result with a time to
-- live) or in the data hash. One command, as workers ask every second
-- whether the queue is paused.
-- KEYS[1] data hash
-- KEYS[2] the value's own key
-- ARGV[1] field
-- Returns 1 or 0.
if redis.call('EXISTS', KEYS[2]) == 1 then
  return 1
end
return redis.call('HEXISTS', KEYS[1], ARGV[1])
