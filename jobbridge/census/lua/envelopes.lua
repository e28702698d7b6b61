-- Read a range of a list of kombu JSON envelopes (Celery's broker lists) for a census page,
-- each element bounded: one longer than ARGV[3] bytes comes back with its body cut out (kombu
-- writes the body first, as base64, which holds no quote), so its headers and properties,
-- where the task name is, still come back; one whose rest is still too long comes back as
-- false. Writes nothing.
--
-- KEYS[1]: the list
-- ARGV[1]: the first index (LRANGE start)
-- ARGV[2]: the last index (LRANGE stop)
-- ARGV[3]: bytes an element may be sent back as, at most
-- Returns: for each element of the range, two items: the element (whole, its body cut out,
--   or false) and its full length in bytes.

local keep = tonumber(ARGV[3])
local out = {}
local marker = '"body": "'
for _, element in ipairs(redis.call('LRANGE', KEYS[1], ARGV[1], ARGV[2])) do
  local size = #element
  local sent = false
  if size <= keep then
    sent = element
  else
    local first, last = string.find(element, marker, 1, true)
    if first and first <= 64 then
      local close = string.find(element, '"', last + 1, true)
      if close and last + (size - close + 1) <= keep then
        sent = string.sub(element, 1, last) .. string.sub(element, close)
      end
    end
  end
  out[#out + 1] = sent
  out[#out + 1] = size
end
return out
