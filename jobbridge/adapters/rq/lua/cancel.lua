-- Cancel an RQ job no worker has taken: what RQ's Job.cancel() does (status `canceled`, out
-- of its queue list or its scheduled / deferred registry, into the canceled registry), plus a
-- `canceled` lifecycle entry and an audit entry, in one script.
-- The removal itself is the state check: a worker takes an id by popping it from the queue
-- list, so either this LREM wins and no worker will ever see the id, or the worker won and
-- the job is running, which is refused (a status change alone would not stop RQ running it).
--
-- KEYS[1..3], ARGV[1..7]: shared by every script (lua/_prelude.lua)
-- KEYS[4]: <prefix>:job:<id>
-- KEYS[5]: <prefix>:queue:<origin>
-- KEYS[6]: <prefix>:scheduled:<origin>
-- KEYS[7]: <prefix>:deferred:<origin>
-- KEYS[8]: <prefix>:canceled:<origin>
-- ARGV[8]: the job's origin queue as Python read it (the keys above are built from it)
-- ARGV[9]: now, Unix seconds (the canceled registry's score, as RQ writes it)
-- ARGV[10]: the lifecycle copy of the job (JSON of its small fields)
-- Returns: {code, detail}
--   { 1, ""}              canceled
--   { 0, ""}              no such job (no hash)
--   {-1, "running"}       a worker took it (its id left the queue list)
--   {-1, "<entry>"}       already canceled / retried / discarded by an operator (lifecycle JSON)
--   {-1, "canceled"}      RQ already marks it canceled
--   {-1, "not waiting"}   the job is in no waiting list (finished, failed, ...)
--   {-1, "rate limited"}  an RQ 3 rate-limited job: RQ keeps its concurrency slot in keys of
--                         its own, which only RQ's Job.cancel releases
--   {-4, ""}              its origin changed since Python read it: read again
--   {-5, key, type, expected}  KEYS[n] holds another type: nothing was changed (jb_wrong_type)
jb.action = 'cancel'
local id = jb.id

local wrong = jb_wrong_type({{KEYS[4], 'hash'}, {KEYS[5], 'list'}, {KEYS[6], 'zset'},
  {KEYS[7], 'zset'}, {KEYS[8], 'zset'}})
if wrong then return wrong end

-- EXISTS before any HSET: writing a vanished hash would leave a stub without `data`.
if redis.call('EXISTS', KEYS[4]) == 0 then
  return jb_gone('no such job')
end
if redis.call('HGET', KEYS[4], 'origin') ~= ARGV[8] then
  return {-4, ''}
end
local status = redis.call('HGET', KEYS[4], 'status')
if status == 'canceled' then
  if redis.call('EXISTS', KEYS[3]) == 1 then
    return jb_gone('no such job')
  end
  return jb_refuse(-1, 'canceled', 'wrong_state', 'already canceled')
end

if redis.call('HEXISTS', KEYS[4], 'rate_limit_key') == 1 then
  return jb_refuse(-1, 'rate limited', 'wrong_state', 'rate-limited job: left to RQ')
end

local removed = redis.call('LREM', KEYS[5], 0, id)
if removed == 0 then removed = redis.call('ZREM', KEYS[6], id) end
if removed == 0 then removed = redis.call('ZREM', KEYS[7], id) end
if removed == 0 then
  if status == 'queued' or status == 'started' then
    return jb_refuse(-1, 'running', 'wrong_state', 'already taken by a worker')
  end
  return jb_refuse(-1, 'not waiting', 'wrong_state', 'not in its queue, scheduled or deferred')
end

redis.call('HSET', KEYS[4], 'status', 'canceled')
redis.call('ZADD', KEYS[8], tonumber(ARGV[9]), id)
return jb_done('canceled', '', ARGV[10], 'canceled')
