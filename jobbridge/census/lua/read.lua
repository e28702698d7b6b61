-- Read the start of one field of many hashes (or of many strings) for a census page: one
-- command for a page of a thousand records instead of one per record, with only a bounded
-- prefix of each value sent back. Writes nothing.
--
-- KEYS[1..n]: the records of the page's ids (hashes; strings when no field is given)
-- ARGV[1]: bytes kept of each value, at most
-- ARGV[2 ..]: the fields read of each hash, in order (none: each key is a string)
-- Returns: for each key, 1 + 2 * (fields, or 1) items: whether the key exists (1, 0; -1 when
--   it holds another type than the one read), then for each field (or the string) its value
--   cut to ARGV[1] bytes (false when absent) and its full length in bytes (0 when absent).

local keep = tonumber(ARGV[1])
local fields = {}
for i = 2, #ARGV do
  fields[#fields + 1] = ARGV[i]
end
local out = {}
for _, key in ipairs(KEYS) do
  local kind = redis.call('TYPE', key)['ok']
  local wanted = (#fields == 0) and 'string' or 'hash'
  local width = math.max(#fields, 1)
  if kind == 'none' or kind ~= wanted then
    out[#out + 1] = (kind == 'none') and 0 or -1
    for _ = 1, width do
      out[#out + 1] = false
      out[#out + 1] = 0
    end
  elseif #fields == 0 then
    out[#out + 1] = 1
    local size = redis.call('STRLEN', key)
    out[#out + 1] = redis.call('GETRANGE', key, 0, keep - 1)
    out[#out + 1] = size
  else
    out[#out + 1] = 1
    for _, field in ipairs(fields) do
      local value = redis.call('HGET', key, field)
      if value then
        out[#out + 1] = string.sub(value, 1, keep)
        out[#out + 1] = #value
      else
        out[#out + 1] = false
        out[#out + 1] = 0
      end
    end
  end
end
return out
