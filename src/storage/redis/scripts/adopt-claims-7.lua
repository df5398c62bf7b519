-- Take over the claims of an owner whose lease ran out, and drop the lease,
-- in one step, so that of several consumers looking at once only one adopts
-- them. Claims whose run had started move to the adopter (still marked
-- started, so that nothing is lost if the adopter dies in turn), to be
-- settled as failed runs. Claims that never started go back to the front of
-- the queue untouched. Runs start in claim order, so only those among the
-- oldest ARGV[4] claims may have been running unrecorded when the owner died:
-- each of those counts a stall (the others were only claimed ahead); one that
-- has stalled more than ARGV[2] times moves to the adopter instead, to be
-- failed for good.
-- KEYS[1] the expired owner's claimed list (newest claim at the left)
-- KEYS[2] the adopter's claimed list
-- KEYS[3] leases hash
-- KEYS[4] the expired owner's started set
-- KEYS[5] the adopter's started set
-- KEYS[6] the queue: a list consumed from its right end, or the priority sorted set
-- KEYS[7] stall counts hash (sha1 of a receipt -> times put back unstarted)
-- ARGV[1] the expired owner's id
-- ARGV[2] most stalls a message may have and still go back on the queue
-- ARGV[3] 'zset' when KEYS[6] is the priority sorted set (receipts "<score>|<member>")
-- ARGV[4] how many runs the owner may have had going at once
-- Returns -1 if the lease was renewed or taken meanwhile; otherwise
-- { started count, requeued count, stalled receipts... }.
local deadline = redis.call('HGET', KEYS[3], ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if not deadline or tonumber(deadline) >= now then
  return -1
end
local result = { 0, 0 }
local maxStalls = tonumber(ARGV[2])
local receipts = redis.call('LRANGE', KEYS[1], 0, -1)
-- Oldest first: the first ARGV[4] claims held the owner's run slots.
local started = {}
local suspect = {}
local slots = tonumber(ARGV[4])
for i = #receipts, 1, -1 do
  if redis.call('SISMEMBER', KEYS[4], receipts[i]) == 1 then
    started[i] = true
  elseif slots > 0 then
    suspect[i] = true
  end
  slots = slots - 1
end
-- Newest first: each unstarted one is pushed to the front in turn, so the
-- oldest ends up at the very front.
for i = 1, #receipts do
  local receipt = receipts[i]
  if started[i] then
    redis.call('LPUSH', KEYS[2], receipt)
    redis.call('SADD', KEYS[5], receipt)
    result[1] = result[1] + 1
  elseif suspect[i] and redis.call('HINCRBY', KEYS[7], redis.sha1hex(receipt), 1) > maxStalls then
    redis.call('LPUSH', KEYS[2], receipt)
    result[#result + 1] = receipt
  else
    if ARGV[3] == 'zset' then
      local bar = string.find(receipt, '|', 1, true)
      redis.call('ZADD', KEYS[6], tonumber(string.sub(receipt, 1, bar - 1)), string.sub(receipt, bar + 1))
    else
      redis.call('RPUSH', KEYS[6], receipt)
    end
    result[2] = result[2] + 1
  end
end
redis.call('DEL', KEYS[1], KEYS[4])
redis.call('HDEL', KEYS[3], ARGV[1])
return result
