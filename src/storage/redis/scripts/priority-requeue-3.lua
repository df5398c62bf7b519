-- Put every message a worker claimed back in the priority queue, at its old
-- place: the receipt keeps the score and the sequence it had. Forget which
-- of them had started.
-- KEYS[1] the worker's claimed list
-- KEYS[2] priority queue sorted set
-- KEYS[3] the worker's started set
-- Returns the number of messages put back.
local receipts = redis.call('LRANGE', KEYS[1], 0, -1)
for i = 1, #receipts do
  local bar = string.find(receipts[i], '|', 1, true)
  redis.call('ZADD', KEYS[2], tonumber(string.sub(receipts[i], 1, bar - 1)), string.sub(receipts[i], bar + 1))
end
redis.call('DEL', KEYS[1], KEYS[3])
return #receipts
