-- Claim the next message of the priority queue for one worker.
-- KEYS[1] priority queue sorted set
-- KEYS[2] the worker's claimed list
-- Returns the receipt "<score>|<member>" (kept in the claimed list until the
-- ack), or nil when the queue is empty.
local popped = redis.call('ZPOPMIN', KEYS[1])
if #popped == 0 then
  return nil
end
local receipt = popped[2] .. '|' .. popped[1]
redis.call('LPUSH', KEYS[2], receipt)
return receipt
