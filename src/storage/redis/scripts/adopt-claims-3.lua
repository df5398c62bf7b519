-- Take over the claims of an owner whose lease ran out: move them into the
-- adopter's claimed list and drop the lease, in one step, so that of several
-- consumers looking at once only one adopts them, and nothing is lost if the
-- adopter dies in turn (its own lease then runs out).
-- KEYS[1] the expired owner's claimed list
-- KEYS[2] the adopter's claimed list
-- KEYS[3] leases hash
-- ARGV[1] the expired owner's id
-- Returns the number of claims moved, or -1 if the lease was renewed or taken meanwhile.
local deadline = redis.call('HGET', KEYS[3], ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if not deadline or tonumber(deadline) >= now then
  return -1
end
local moved = 0
while redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT') do
  moved = moved + 1
end
redis.call('HDEL', KEYS[3], ARGV[1])
return moved
