-- Settle a claim by enqueueing the next try of its message and acking the
-- claim in one step, so a consumer that dies in between can neither lose
-- the retry nor leave the claim to be run again beside it. The ack is
-- ack-3.lua's: the claim, its started mark and its stall count go, and the
-- worker's other started marks not yet sent are recorded, with the task
-- records written since its last step.
-- KEYS[1] the worker's claimed list
-- KEYS[2] the worker's started set
-- KEYS[3] stall counts hash
-- KEYS[4] queue list (a retry due now)
-- KEYS[5] schedule sorted set (a retry due later)
-- ARGV[1] the claim's receipt
-- ARGV[2] the retry: a queue entry, or a schedule member
-- ARGV[3] its eta in ms for the schedule, or '' for the queue
-- ARGV[4...] the records this step carries (see records.lua), then the
-- receipts of the worker's other claims whose runs have started
if ARGV[3] == '' then
  redis.call('LPUSH', KEYS[4], ARGV[2])
else
  redis.call('ZADD', KEYS[5], ARGV[3], ARGV[2])
end
local marks = write_records(4)
if #ARGV >= marks then
  redis.call('SADD', KEYS[2], unpack(ARGV, marks))
end
redis.call('LREM', KEYS[1], -1, ARGV[1])
redis.call('SREM', KEYS[2], ARGV[1])
if redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('HDEL', KEYS[3], redis.sha1hex(ARGV[1]))
end
return 1
