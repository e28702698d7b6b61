-- Append a bulk run's own audit entry (newest first) to jobbridge's audit list and keep it
-- bounded; the entry has the shape the action scripts write (adapters/lua/_prelude.lua).
-- jobbridge/bulk/store.py runs it.
--
-- KEYS[1]: jobbridge audit list (one per Redis)
-- ARGV[1]: the entry (JSON)
-- ARGV[2]: audit list limit
-- Returns: 1 when written, 0 when the key holds another type (nothing written).

local kind = redis.call('TYPE', KEYS[1]).ok
if kind ~= 'list' and kind ~= 'none' then
  return 0
end
redis.call('LPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], 0, tonumber(ARGV[2]) - 1)
return 1
