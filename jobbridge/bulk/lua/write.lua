-- Store a bulk run's state while the writer holds its lease: fields of the run's hash, ids
-- appended to its matched list, skipped jobs appended to its skipped list (both bounded);
-- renews the lease, or gives it up with the last write. jobbridge/bulk/store.py runs it.
--
-- KEYS[1]: the lease (string: the runner's token)
-- KEYS[2]: the run (hash: state, matched, acted, outcomes, ... see bulk/store.py)
-- KEYS[3]: the matched ids (list of JSON [id, entry])
-- KEYS[4]: the skipped jobs (list of JSON {job_id, outcome, message})
-- ARGV[1]: the runner's token
-- ARGV[2]: the lease's life, ms
-- ARGV[3]: seconds the keys live after this write (EXPIRE)
-- ARGV[4]: "1" for a run's first write (refused while anyone holds the lease; the keys are
--   replaced, the lease taken), else "0"
-- ARGV[5]: "1" when this is the last write (the lease is given up), else "0"
-- ARGV[6]: n, ids to append; ARGV[7]: m, skipped jobs to append
-- ARGV[8]: most ids kept; ARGV[9]: most skipped jobs kept
-- ARGV[10 .. 9+n]: ids; then m skipped jobs; then field, value pairs of the hash
-- Returns: {1, cancel_by} when written (cancel_by: who asked to cancel the run, "" nobody);
--   {-1, ""} when this token does not hold the lease (nothing written).

local holder = redis.call('GET', KEYS[1])
if ARGV[4] == '1' then
  if holder then
    return {-1, ''}
  end
  redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
elseif holder ~= ARGV[1] then
  return {-1, ''}
end
local n, m = tonumber(ARGV[6]), tonumber(ARGV[7])
local at = 10
if n > 0 then
  redis.call('RPUSH', KEYS[3], unpack(ARGV, at, at + n - 1))
  redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[8]) - 1)
end
at = at + n
if m > 0 then
  redis.call('RPUSH', KEYS[4], unpack(ARGV, at, at + m - 1))
  redis.call('LTRIM', KEYS[4], 0, tonumber(ARGV[9]) - 1)
end
at = at + m
if #ARGV >= at then
  redis.call('HSET', KEYS[2], unpack(ARGV, at))
end
for i = 2, 4 do
  redis.call('EXPIRE', KEYS[i], ARGV[3])
end
if ARGV[5] == '1' then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
local cancel_by = redis.call('HGET', KEYS[2], 'cancel_by')
return {1, cancel_by or ''}
