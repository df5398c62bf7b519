-- Ack a claim: forget it, its started mark and its stall count. The same
-- step records the worker's runs that have started since its last step (the
-- marks wait in the client until a step of this worker goes out, or one turn
-- of its event loop), so a task that finishes at once is never marked at all,
-- and the task records written since the worker's last step.
-- KEYS[1] the worker's claimed list
-- KEYS[2] the worker's started set
-- KEYS[3] stall counts hash
-- ARGV[1] the claim's receipt
-- ARGV[2...] the records this step carries (see records.lua), then the
-- receipts of the worker's other claims whose runs have started
local marks = write_records(2)
if #ARGV >= marks then
  redis.call('SADD', KEYS[2], unpack(ARGV, marks))
end
redis.call('LREM', KEYS[1], -1, ARGV[1])
redis.call('SREM', KEYS[2], ARGV[1])
if redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('HDEL', KEYS[3], redis.sha1hex(ARGV[1]))
end
return 1
