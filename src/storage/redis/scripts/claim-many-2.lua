-- Claim up to ARGV[1] messages for one worker in one round trip. Each moves,
-- oldest first, from the queue's right end to the worker's claimed list, as a
-- BLMOVE would, and stays there until acked.
-- KEYS[1] queue list
-- KEYS[2] the worker's claimed list
-- ARGV[1] most messages to claim
-- Returns the claimed messages, oldest first (empty when the queue is).
local claimed = {}
for i = 1, tonumber(ARGV[1]) do
  local data = redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT')
  if not data then
    break
  end
  claimed[i] = data
end
return claimed
