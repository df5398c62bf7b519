-- Move every scheduled message that is due onto the queue, in one step, so
-- that two schedulers polling at once never both enqueue the same message.
-- KEYS[1] schedule sorted set (score: eta in ms)
-- KEYS[2] queue list
-- ARGV[1] now, ms since the epoch
-- ARGV[2] most messages to move in one call
-- Returns the number of messages moved, and the score (eta) of the soonest
-- message left (nothing in its place when none is left).
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for i = 1, #due do
  redis.call('LPUSH', KEYS[2], due[i])
  redis.call('ZREM', KEYS[1], due[i])
end
local soonest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {#due, soonest[2]}
