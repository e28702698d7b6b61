-- Retry a failed RQ job under a new id: a new job hash copying the original's call and
-- settings, status `queued`, RPUSHed to its origin queue as RQ's enqueue does; the old id
-- leaves the failed registry and becomes a `retried` lifecycle entry naming the new id (its
-- hash expires on its own failure_ttl). One script, so two retries cannot both succeed.
--
-- Only RQ's statuses and timestamp format are written: anything else makes RQ's worker exit.
--
-- KEYS[1..3], ARGV[1..7]: shared by every script (lua/_prelude.lua); ARGV[7] is the old id
-- KEYS[4]: <prefix>:job:<old id>
-- KEYS[5]: <prefix>:failed:<origin>
-- KEYS[6]: <prefix>:job:<new id>
-- KEYS[7]: <prefix>:queue:<origin>
-- KEYS[8]: <prefix>:queues
-- ARGV[8]: the job's origin queue as Python read it (the keys above are built from it)
-- ARGV[9]: new id
-- ARGV[10]: now in RQ's timestamp format (%Y-%m-%dT%H:%M:%S.%fZ): created_at, enqueued_at
-- ARGV[11]: the lifecycle copy of the job (JSON of its small fields)
-- ARGV[12]: retries_left of the new job, the original's RQ Retry as far as RQ stored it
--           ("" for none: the new job then runs once); Python checked it
-- ARGV[13]: retry_intervals of the new job (JSON list of seconds, as RQ writes it; "" none)
-- ARGV[14]: enqueue_at_front_on_retry of the new job ("1", or "" for none)
-- ARGV[15]: the audit message (says how many attempts the new job has)
-- Returns: {code, detail}
--   { 1, "<new id>"}    retried
--   { 0, ""}            not in the failed registry
--   {-1, "<entry>"}     already canceled / retried / discarded by an operator (lifecycle JSON)
--   {-1, "not failed"}  listed as failed, but RQ has since requeued or rerun it
--   {-1, "rate limited"} an RQ 3 rate-limited job: a copy pushed here would skip RQ's limiter
--   {-2, ""}            the job hash is gone or has no `data`: nothing to run again
--   {-2, "bad ttl"}     its `ttl` is not an integer RQ wrote: the copy could not expire
--   {-3, "new id"}      the new id is taken (never expected: ids are random)
--   {-4, ""}            its origin changed since Python read it: read again
--   {-5, key, type, expected}  KEYS[n] holds another type: nothing was changed (jb_wrong_type)
jb.action = 'retry'
local new_id = ARGV[9]

local wrong = jb_wrong_type({{KEYS[4], 'hash'}, {KEYS[5], 'zset'}, {KEYS[6], 'hash'},
  {KEYS[7], 'list'}, {KEYS[8], 'set'}})
if wrong then return wrong end

if not redis.call('ZSCORE', KEYS[5], jb.id) then
  return jb_gone('no such failed job')
end
if redis.call('EXISTS', KEYS[4]) == 0 or redis.call('HEXISTS', KEYS[4], 'data') == 0 then
  return jb_refuse(-2, '', 'corrupt', 'job hash gone or without data')
end
if redis.call('HGET', KEYS[4], 'origin') ~= ARGV[8] then
  return {-4, ''}
end
local status = redis.call('HGET', KEYS[4], 'status')
if status ~= 'failed' and status ~= 'stopped' then
  return jb_refuse(-1, 'not failed', 'wrong_state', 'not failed (status ' .. tostring(status) .. ')')
end
if redis.call('HEXISTS', KEYS[4], 'rate_limit_key') == 1 then
  return jb_refuse(-1, 'rate limited', 'wrong_state', 'rate-limited job: left to RQ')
end
if redis.call('EXISTS', KEYS[6]) == 1 then
  return jb_refuse(-3, 'new id', 'conflict', 'the new id is taken')
end
-- The EXPIRE below would fail after the new hash is written: a ttl RQ did not write (RQ writes
-- an integer, and one over 12 digits no Redis takes) is refused first.
local stored_ttl = redis.call('HGET', KEYS[4], 'ttl') or ''
if stored_ttl ~= '' and not (string.match(stored_ttl, '^%-?%d+$') and #stored_ttl <= 12) then
  return jb_refuse(-2, 'bad ttl', 'corrupt', 'its ttl is not an integer RQ wrote')
end

-- The call and its settings, as the original had them; a fresh run's state otherwise.
local copied = {
  'data', 'description', 'origin', 'timeout', 'result_ttl', 'failure_ttl', 'ttl', 'meta',
  'success_callback_name', 'failure_callback_name', 'stopped_callback_name',
  'success_callback_timeout', 'failure_callback_timeout', 'stopped_callback_timeout',
  'webhooks'
}
local values = redis.call('HMGET', KEYS[4], unpack(copied))
local fields = {
  'status', 'queued', 'created_at', ARGV[10], 'enqueued_at', ARGV[10],
  'started_at', '', 'ended_at', '', 'last_heartbeat', '', 'worker_name', '', 'group_id', ''
}
for i, name in ipairs(copied) do
  if values[i] then
    fields[#fields + 1] = name
    fields[#fields + 1] = values[i]
  end
end
-- The Retry policy: a fresh count of retries, not the original's (spent) retries_left. The
-- values are Python's checked ones, never copied raw: RQ's worker parses them when it loads
-- the job, and a bad one makes it fail every run.
local policy = {'retries_left', ARGV[12], 'retry_intervals', ARGV[13],
  'enqueue_at_front_on_retry', ARGV[14]}
for i = 1, #policy, 2 do
  if policy[i + 1] ~= '' then
    fields[#fields + 1] = policy[i]
    fields[#fields + 1] = policy[i + 1]
  end
end
redis.call('HSET', KEYS[6], unpack(fields))
-- As RQ's enqueue: the hash expires only when the job has a ttl (seconds, -1 = never).
local ttl = tonumber(values[7] or '')
if ttl and ttl > 0 then
  redis.call('EXPIRE', KEYS[6], math.floor(ttl))
end
redis.call('ZREM', KEYS[5], jb.id)
redis.call('SADD', KEYS[8], KEYS[7])
redis.call('RPUSH', KEYS[7], new_id)
return jb_done('retried', new_id, ARGV[11], ARGV[15], new_id)
