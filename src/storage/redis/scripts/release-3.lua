-- Give back some of a worker's claims, claimed ahead and never started, to
-- the front of the queue, for another worker to take, forgetting any started
-- mark they had.
-- KEYS[1] the worker's claimed list
-- KEYS[2] the queue: a list consumed from its right end, or the priority sorted set
-- KEYS[3] the worker's started set
-- ARGV[1] 'zset' when KEYS[2] is the priority sorted set (receipts "<score>|<member>")
-- ARGV[2...] the receipts, next to run first
-- Returns the number given back (a receipt no longer claimed is skipped).
local moved = 0
-- Last first, so that the first given ends up at the very front.
for i = #ARGV, 2, -1 do
  local receipt = ARGV[i]
  if redis.call('LREM', KEYS[1], -1, receipt) > 0 then
    redis.call('SREM', KEYS[3], receipt)
    if ARGV[1] == 'zset' then
      local bar = string.find(receipt, '|', 1, true)
      redis.call('ZADD', KEYS[2], tonumber(string.sub(receipt, 1, bar - 1)), string.sub(receipt, bar + 1))
    else
      redis.call('RPUSH', KEYS[2], receipt)
    end
    moved = moved + 1
  end
end
return moved
