-- Claim up to ARGV[1] messages for one worker in one round trip. Each moves,
-- oldest first, from the queue's right end to the worker's claimed list, as a
-- BLMOVE would, and stays there until acked. With ARGV[2] and ARGV[3] (two
-- data key prefixes) it also reads their revocation flags (see peek-flags.lua).
-- KEYS[1] queue list
-- KEYS[2] the worker's claimed list
-- KEYS[3] data hash
-- Returns per claimed message, oldest first: its data, then, when peeking, its
-- id, task name and the two flags (false for none). Empty when the queue is.
local messages = {}
for i = 1, tonumber(ARGV[1]) do
  local data = redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT')
  if not data then
    break
  end
  messages[i] = data
end
return claimed_reply(messages, messages, KEYS[3], ARGV[2], ARGV[3])
