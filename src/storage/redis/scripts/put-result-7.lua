-- Store a task's result, tell whoever waits on it, and (when a receipt is
-- given) ack the claim in the same step: one round trip for a finished task.
-- Without a time to live the result goes in the data hash; with one, in its
-- own key that Redis expires (a hash field cannot expire on Redis 7.0), and
-- its id in the expiry index, scored by when it lapses on Redis's clock, so
-- that counting and listing the data can find it. Either way the other place
-- is cleared, so a result never lives in both.
-- The same step carries the worker's started marks not yet sent (see
-- ack-3.lua), so marking a run as started costs no command of its own, and
-- the task records written since (its own "complete" among them).
-- KEYS[1] data hash
-- KEYS[2] the result's own key (used with a time to live)
-- KEYS[3] results channel (a channel name shares the hash tag, for the cluster)
-- KEYS[4] the worker's claimed list (used with a receipt)
-- KEYS[5] the worker's started set
-- KEYS[6] stall counts hash
-- KEYS[7] expiry index (sorted set: id -> ms it lapses at)
-- ARGV[1] field (the task id)
-- ARGV[2] value
-- ARGV[3] time to live in ms, or 0 for none
-- ARGV[4] the claim's receipt, or '' for no ack
-- ARGV[5...] the records this step carries (see records.lua), then the
-- receipts of the worker's other claims whose runs have started
if tonumber(ARGV[3]) > 0 then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
  redis.call('HDEL', KEYS[1], ARGV[1])
  -- Entries that lapsed go with the next write, so the index stays the size of the live results.
  redis.call('ZREMRANGEBYSCORE', KEYS[7], '-inf', '(' .. now)
  redis.call('ZADD', KEYS[7], now + tonumber(ARGV[3]), ARGV[1])
else
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  -- A result with a time to live that has not lapsed is in the index: a look there (a small
  -- set, usually empty) spares every result a lookup among all the keys of the database.
  if redis.call('ZSCORE', KEYS[7], ARGV[1]) then
    redis.call('DEL', KEYS[2])
    redis.call('ZREM', KEYS[7], ARGV[1])
  end
end
redis.call('PUBLISH', KEYS[3], ARGV[1])
local marks = write_records(5)
if #ARGV >= marks then
  redis.call('SADD', KEYS[5], unpack(ARGV, marks))
end
if ARGV[4] ~= '' then
  redis.call('LREM', KEYS[4], -1, ARGV[4])
  redis.call('SREM', KEYS[5], ARGV[4])
  if redis.call('EXISTS', KEYS[6]) == 1 then
    redis.call('HDEL', KEYS[6], redis.sha1hex(ARGV[4]))
  end
end
return 1
