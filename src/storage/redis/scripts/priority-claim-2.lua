-- Claim up to ARGV[1] messages of the priority queue for one worker, highest
-- priority first.
-- KEYS[1] priority queue sorted set
-- KEYS[2] the worker's claimed list
-- ARGV[1] most messages to claim
-- Returns the receipts "<score>|<member>" (each kept in the claimed list until
-- its ack), in the order to run them; empty when the queue is.
local popped = redis.call('ZPOPMIN', KEYS[1], ARGV[1])
local receipts = {}
for i = 1, #popped, 2 do
  local receipt = popped[i + 1] .. '|' .. popped[i]
  redis.call('LPUSH', KEYS[2], receipt)
  receipts[#receipts + 1] = receipt
end
return receipts
