-- Merge fields into one task's record, keep it ttl ms from now, and keep the
-- failed index in step: a record whose state becomes "failed" is listed there
-- by its end time, and leaves it when its state changes.
-- KEYS: the record hash, the failed index (sorted set).
-- ARGV: task id, ttl in ms, then field, value pairs.
local id, ttl = ARGV[1], tonumber(ARGV[2])
local fields = {}
local state, ended
for i = 3, #ARGV, 2 do
  fields[#fields + 1] = ARGV[i]
  fields[#fields + 1] = ARGV[i + 1]
  if ARGV[i] == 'state' then state = ARGV[i + 1] elseif ARGV[i] == 'ended' then ended = ARGV[i + 1] end
end
if #fields > 0 then redis.call('HSET', KEYS[1], unpack(fields)) end
redis.call('PEXPIRE', KEYS[1], ttl)
if state == 'failed' then
  redis.call('ZADD', KEYS[2], tonumber(ended) or 0, id)
elseif state then
  redis.call('ZREM', KEYS[2], id)
end
return 1
