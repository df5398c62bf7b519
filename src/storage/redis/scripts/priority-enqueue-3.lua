-- Add messages to the priority queue, higher priority first and first in,
-- first out within a priority, and wake one waiting worker.
-- A member is "<16-digit sequence>|<data>" scored by -priority: ZPOPMIN then
-- takes the highest priority, and equal scores sort by member, so by sequence.
-- KEYS[1] priority queue sorted set
-- KEYS[2] sequence counter
-- KEYS[3] wake-up list that idle workers wait on
-- ARGV    priority, data, priority, data, ...
-- Returns the number of messages added.
local added = 0
for i = 1, #ARGV, 2 do
  local seq = redis.call('INCR', KEYS[2])
  redis.call('ZADD', KEYS[1], -tonumber(ARGV[i]), string.format('%016d|%s', seq, ARGV[i + 1]))
  added = added + 1
end
redis.call('LPUSH', KEYS[3], '1')
-- A few tokens are enough to wake every waiting worker; never let them pile up.
redis.call('LTRIM', KEYS[3], 0, 63)
return added
