-- Claim up to ARGV[1] messages of the priority queue for one worker, highest
-- priority first. With ARGV[2] and ARGV[3] (two data key prefixes) it also
-- reads their revocation flags (see peek-flags.lua).
-- KEYS[1] priority queue sorted set
-- KEYS[2] the worker's claimed list
-- KEYS[3] data hash
-- Returns per message, in the order to run them: its receipt
-- "<score>|<member>" (kept in the claimed list until its ack), then, when
-- peeking, its id, task name and the two flags (false for none). Empty when
-- the queue is.
local popped = redis.call('ZPOPMIN', KEYS[1], ARGV[1])
local receipts, messages = {}, {}
for i = 1, #popped, 2 do
  local receipt = popped[i + 1] .. '|' .. popped[i]
  redis.call('LPUSH', KEYS[2], receipt)
  receipts[#receipts + 1] = receipt
  -- A member is "<sequence>|<data>".
  messages[#messages + 1] = string.sub(popped[i], string.find(popped[i], '|', 1, true) + 1)
end
return claimed_reply(receipts, messages, KEYS[3], ARGV[2], ARGV[3])
