-- Count the priority queue's messages by priority, one step per distinct
-- priority rather than per message.
-- KEYS[1] priority queue sorted set (scored by -priority)
-- Returns priority, count, priority, count, ... highest priority first.
local out = {}
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
while #first > 0 do
  local score = first[2]
  out[#out + 1] = -tonumber(score)
  out[#out + 1] = redis.call('ZCOUNT', KEYS[1], score, score)
  first = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. score, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
end
return out
