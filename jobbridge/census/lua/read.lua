-- Read the start of some fields of many hashes (or of many strings) for a census page: one
-- command for a page of a thousand records instead of one per record, with only a bounded
-- prefix of each value sent back. Writes nothing. One HMGET per hash (GETRANGE and STRLEN per
-- string); EXISTS only for a record none of whose fields is there.
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
local width = math.max(#fields, 1)
local out = {}

local function absent(exists)
  out[#out + 1] = exists
  for _ = 1, width do
    out[#out + 1] = false
    out[#out + 1] = 0
  end
end

for _, key in ipairs(KEYS) do
  if #fields == 0 then
    local size = redis.pcall('STRLEN', key)
    if type(size) == 'table' then
      absent(-1)
    elseif size == 0 and redis.call('EXISTS', key) == 0 then
      absent(0)
    else
      out[#out + 1] = 1
      out[#out + 1] = redis.call('GETRANGE', key, 0, keep - 1)
      out[#out + 1] = size
    end
  else
    local values = redis.pcall('HMGET', key, unpack(fields))
    if values.err then
      absent(-1)
    else
      local found = false
      for i = 1, #fields do
        found = found or (values[i] ~= false)
      end
      if not found and redis.call('EXISTS', key) == 0 then
        absent(0)
      else
        out[#out + 1] = 1
        for i = 1, #fields do
          local value = values[i]
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
  end
end
return out
