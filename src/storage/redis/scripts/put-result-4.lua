-- Store a task's result, tell whoever waits on it, and (when a receipt is
-- given) ack the claim in the same step: one round trip for a finished task.
-- Without a time to live the result goes in the data hash; with one, in its
-- own key that Redis expires (a hash field cannot expire on Redis 7.0).
-- KEYS[1] data hash
-- KEYS[2] the result's own key (used with a time to live)
-- KEYS[3] results channel (a channel name shares the hash tag, for the cluster)
-- KEYS[4] the worker's claimed list (used with a receipt)
-- ARGV[1] field (the task id)
-- ARGV[2] value
-- ARGV[3] time to live in ms, or 0 for none
-- ARGV[4] the claim's receipt, or '' for no ack
if tonumber(ARGV[3]) > 0 then
  redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
else
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
end
redis.call('PUBLISH', KEYS[3], ARGV[1])
if ARGV[4] ~= '' then
  redis.call('LREM', KEYS[4], -1, ARGV[4])
end
return 1
