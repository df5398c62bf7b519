-- Remove and return every scheduled message that is due.
-- KEYS[1] schedule sorted set (score: eta in ms)
-- ARGV[1] now, ms since the epoch
-- Returns the due messages, soonest first.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if #due > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
end
return due
