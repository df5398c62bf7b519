-- Revocation flags read with a claim (included by the claim scripts). A
-- worker would otherwise read them in a second round trip, which waits in
-- Redis behind the results and acks the worker sent meanwhile.
-- For each message that starts as huey-ts writes one ({"id":"...","name":"..."),
-- reads the data fields by_id .. id and by_name .. name of the data hash.
-- Returns per message {id, name, by id's value, by name's value}, each false
-- where the start did not match or the field is absent. The worker trusts a
-- peek only when the id and name are the message's own.
local function peek_flags(messages, data, by_id, by_name)
  local peeked, fields, owners = {}, {}, {}
  for i, message in ipairs(messages) do
    local id, name = string.match(message, '^{"id":"([^"\\]+)","name":"([^"\\]+)"')
    peeked[i] = { id or false, name or false, false, false }
    if id then
      fields[#fields + 1] = by_id .. id
      fields[#fields + 1] = by_name .. name
      owners[#owners + 1] = i
    end
  end
  -- In steps, to stay well inside Lua's limit on unpacked values.
  for first = 1, #owners, 100 do
    local last = math.min(first + 99, #owners)
    local values = redis.call('HMGET', data, unpack(fields, 2 * first - 1, 2 * last))
    for n = first, last do
      local entry = peeked[owners[n]]
      entry[3], entry[4] = values[2 * (n - first) + 1], values[2 * (n - first) + 2]
    end
  end
  return peeked
end

-- A claim script's reply: each claimed item (its data, or its receipt) alone
-- when not peeking (by_id nil), else followed by its message's peek.
local function claimed_reply(items, messages, data, by_id, by_name)
  if by_id == nil then
    return items
  end
  local reply = {}
  for i, entry in ipairs(peek_flags(messages, data, by_id, by_name)) do
    reply[#reply + 1] = items[i]
    for _, value in ipairs(entry) do
      reply[#reply + 1] = value
    end
  end
  return reply
end
