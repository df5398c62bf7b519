-- Store a task's result, tell whoever waits on it, and (when a receipt is
-- given) ack the claim in the same step: one round trip for a finished task.
-- Without a time to live the result goes in the data hash; with one, in its
-- own key that Redis expires (a hash field cannot expire on Redis 7.0).
-- The same step carries the worker's started marks not yet sent (see
-- ack-3.lua), so marking a run as started costs no command of its own.
-- KEYS[1] data hash
-- KEYS[2] the result's own key (used with a time to live)
-- KEYS[3] results channel (a channel name shares the hash tag, for the cluster)
-- KEYS[4] the worker's claimed list (used with a receipt)
-- KEYS[5] the worker's started set
-- KEYS[6] stall counts hash
-- ARGV[1] field (the task id)
-- ARGV[2] value
-- ARGV[3] time to live in ms, or 0 for none
-- ARGV[4] the claim's receipt, or '' for no ack
-- ARGV[5...] receipts of the worker's other claims whose runs have started
if tonumber(ARGV[3]) > 0 then
  redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
else
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
end
redis.call('PUBLISH', KEYS[3], ARGV[1])
if #ARGV > 4 then
  redis.call('SADD', KEYS[5], unpack(ARGV, 5))
end
if ARGV[4] ~= '' then
  redis.call('LREM', KEYS[4], -1, ARGV[4])
  redis.call('SREM', KEYS[5], ARGV[4])
  if redis.call('EXISTS', KEYS[6]) == 1 then
    redis.call('HDEL', KEYS[6], redis.sha1hex(ARGV[4]))
  end
end
return 1
