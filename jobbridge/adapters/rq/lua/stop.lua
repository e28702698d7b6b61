-- Ask the RQ worker running a job to stop it: RQ's own `stop-job` command, published on the
-- worker's command channel as `rq.command.send_stop_job_command` does. The worker kills the
-- job's work horse and files the job as `stopped` in the failed registry itself; jobbridge
-- changes no job state. The script re-checks that the job still runs on that worker, and
-- refuses when nobody listens on the channel (the worker is gone). Audited, no lifecycle entry.
--
-- KEYS[1..3], ARGV[1..7]: shared by every script (lua/_prelude.lua)
-- KEYS[4]: <prefix>:job:<id>
-- ARGV[8]: the worker Python read from the job's `worker_name`
-- ARGV[9]: that worker's command channel, <prefix>:pubsub:<worker>
-- ARGV[10]: the command, JSON: {"command": "stop-job", "job_id": "<id>"}
-- Returns: {code, detail}
--   { 1, "<worker>"}     the request was delivered to the worker
--   { 0, ""}             no such job
--   {-1, "not running"}  the job is not running (any more)
--   {-3, "no listener"}  nobody listens on the worker's channel: the worker is gone
--   {-4, ""}             another worker runs it now: read again
--   {-5, key, type, expected}  KEYS[n] holds another type: nothing was sent (jb_wrong_type)
jb.action = 'stop'

local wrong = jb_wrong_type({{KEYS[4], 'hash'}})
if wrong then return wrong end

if redis.call('EXISTS', KEYS[4]) == 0 then
  return jb_gone('no such job')
end
if redis.call('HGET', KEYS[4], 'status') ~= 'started' then
  return jb_refuse(-1, 'not running', 'wrong_state', 'not running')
end
if redis.call('HGET', KEYS[4], 'worker_name') ~= ARGV[8] then
  return {-4, ''}
end
if redis.call('PUBLISH', ARGV[9], ARGV[10]) == 0 then
  return jb_refuse(-3, 'no listener', 'conflict', 'worker ' .. ARGV[8] .. ' is not listening')
end
return jb_done('', '', '', 'stop requested from worker ' .. ARGV[8], ARGV[8])
