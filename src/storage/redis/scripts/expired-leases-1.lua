-- List the owners whose lease has run out, on Redis's clock.
-- KEYS[1] leases hash (owner id -> deadline in ms)
-- Returns the owner ids.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local entries = redis.call('HGETALL', KEYS[1])
local expired = {}
for i = 1, #entries, 2 do
  if tonumber(entries[i + 1]) < now then
    expired[#expired + 1] = entries[i]
  end
end
return expired
