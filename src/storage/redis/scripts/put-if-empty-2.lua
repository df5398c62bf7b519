-- Set a field of the data hash only if no value is there: neither in the
-- hash nor in the field's own key (a result with a time to live that has
-- not lapsed, which Redis drops by itself when it does).
-- KEYS[1] data hash
-- KEYS[2] the value's own key
-- ARGV[1] field
-- ARGV[2] value
-- Returns 1 when set, 0 otherwise.
if redis.call('EXISTS', KEYS[2]) == 1 then
  return 0
end
return redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
