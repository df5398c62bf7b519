-- Move due scheduled messages into the priority queue in one step.
-- Scheduled members are "<priority>|<data>".
-- KEYS[1] schedule sorted set (score: eta in ms)
-- KEYS[2] priority queue sorted set
-- KEYS[3] sequence counter
-- KEYS[4] wake-up list
-- ARGV[1] now, ms since the epoch
-- ARGV[2] most messages to move in one call
-- Returns the number of messages moved, and the score (eta) of the soonest
-- message left (nothing in its place when none is left).
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for i = 1, #due do
  local bar = string.find(due[i], '|', 1, true)
  local seq = redis.call('INCR', KEYS[3])
  redis.call('ZADD', KEYS[2], -tonumber(string.sub(due[i], 1, bar - 1)), string.format('%016d|%s', seq, string.sub(due[i], bar + 1)))
  redis.call('ZREM', KEYS[1], due[i])
end
if #due > 0 then
  redis.call('LPUSH', KEYS[4], '1')
  redis.call('LTRIM', KEYS[4], 0, 63)
end
local soonest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {#due, soonest[2]}
