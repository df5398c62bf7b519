-- Put every message a worker claimed back at the front of the queue, and
-- forget which of them had started (a clean stop puts back only what it
-- interrupted or never began).
-- The queue is consumed from its right end, and the claimed list holds the
-- newest claim at its left, so moving left-to-right leaves the oldest claim
-- at the very front.
-- KEYS[1] claimed list of the worker
-- KEYS[2] queue list
-- KEYS[3] the worker's started set
-- Returns the number of messages moved.
local moved = 0
while redis.call('LMOVE', KEYS[1], KEYS[2], 'LEFT', 'RIGHT') do
  moved = moved + 1
end
redis.call('DEL', KEYS[3])
return moved
