-- Task records carried by a step (included by the scripts that carry them;
-- see write-records-1.lua). ARGV[at] holds them all as one JSON array ('' for
-- none): one argument rather than a dozen per record, which is what records
-- cost a drain (Redis's own writes are cheap next to reading the arguments).
-- The array holds the key prefix of a record, the failed index's key, then
-- per record: the task id, the time to live in ms, its state ('' to leave
-- it), its end time ('' for none), how many other fields, and their field,
-- value pairs, all merged into the record's hash; every item a string. Its
-- time to live is set anew,
-- except by a write of "running" or "complete" to a record that was there:
-- that one keeps the time set when the task was enqueued (PEXPIRE costs as
-- much as the HSET, and these are the writes of every run). A record whose
-- state becomes "failed" is listed in the failed index (scored by when the
-- record lapses); one written with a state that can follow "failed"
-- (enqueued again, by requeue) leaves it.
-- Returns the index of the argument after the block.
local function write_records(at)
  if ARGV[at] == '' then
    return at + 1
  end
  local block = cjson.decode(ARGV[at])
  local prefix, failed = block[1], block[2]
  local i = 3
  while i <= #block do
    local id, ttl, state, ended = block[i], block[i + 1], block[i + 2], block[i + 3]
    local first, last = i + 5, i + 4 + 2 * tonumber(block[i + 4])
    local key = prefix .. id
    local expire = true
    if state ~= '' then
      local added
      if ended ~= '' then
        added = redis.call('HSET', key, 'state', state, 'ended', ended, unpack(block, first, last))
      else
        added = redis.call('HSET', key, 'state', state, unpack(block, first, last))
      end
      if state == 'failed' then
        -- Scored by when the record lapses (its end plus its time to live), so
        -- lapsed entries can be dropped by score and the rest sort by their end.
        local at = tonumber(ended)
        if not at then
          local t = redis.call('TIME')
          at = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        end
        redis.call('ZADD', failed, at + tonumber(ttl), id)
      elseif state == 'running' or state == 'complete' then
        -- A record that was there had a state, so its "state" field was not added.
        expire = added == (last - first + 1) / 2 + (ended ~= '' and 2 or 1)
      else
        redis.call('ZREM', failed, id)
      end
    elseif last >= first then
      redis.call('HSET', key, unpack(block, first, last))
    end
    if expire then
      redis.call('PEXPIRE', key, ttl)
    end
    i = last + 1
  end
  return at + 1
end

