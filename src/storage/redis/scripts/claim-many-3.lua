-- Claim up to ARGV[1] messages for one worker in one round trip. Each moves,
-- oldest first, from the queue's right end to the worker's claimed list, as a
-- BLMOVE would, and stays there until acked.
-- With ARGV[2] and ARGV[3] (two data key prefixes), the same step peeks, for
-- each message that starts as huey-ts writes one ({"id":"...","name":"..."),
-- at the data fields ARGV[2] .. id and ARGV[3] .. name: its revocation flags.
-- A worker would otherwise read them in a second round trip, which waits in
-- Redis behind the results and acks the worker sent meanwhile. The worker
-- trusts a peek only when the id and name it returns are the message's own.
-- KEYS[1] queue list
-- KEYS[2] the worker's claimed list
-- KEYS[3] data hash
-- Returns per claimed message, oldest first: its data, then, when peeking, its
-- id, task name and the two fields (false where the start did not match or a
-- field is absent). Empty when the queue is.
local peeking = ARGV[2] ~= nil
local width = peeking and 5 or 1
local claimed = {}
local fields, owners = {}, {}
for i = 1, tonumber(ARGV[1]) do
  local data = redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT')
  if not data then
    break
  end
  local at = (i - 1) * width
  claimed[at + 1] = data
  if peeking then
    local id, name = string.match(data, '^{"id":"([^"\\]+)","name":"([^"\\]+)"')
    claimed[at + 2], claimed[at + 3], claimed[at + 4], claimed[at + 5] = id or false, name or false, false, false
    if id then
      fields[#fields + 1] = ARGV[2] .. id
      fields[#fields + 1] = ARGV[3] .. name
      owners[#owners + 1] = at
    end
  end
end
-- In steps, to stay well inside Lua's limit on unpacked values.
for first = 1, #owners, 100 do
  local last = math.min(first + 99, #owners)
  local values = redis.call('HMGET', KEYS[3], unpack(fields, 2 * first - 1, 2 * last))
  for n = first, last do
    local at = owners[n]
    claimed[at + 4] = values[2 * (n - first) + 1]
    claimed[at + 5] = values[2 * (n - first) + 2]
  end
end
return claimed
