-- Renew the leases of a consumer and its workers, on Redis's own clock so
-- that consumers on machines whose clocks differ still agree.
-- KEYS[1] leases hash (owner id -> deadline, ms on the server's clock)
-- ARGV[1] lease length in ms
-- ARGV[2..] owner ids
local t = redis.call('TIME')
local deadline = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1])
for i = 2, #ARGV do
  redis.call('HSET', KEYS[1], ARGV[i], deadline)
end
return deadline
