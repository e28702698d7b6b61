-- Ask a bulk run to stop: the runner reads the request between batches (write.lua returns it).
-- jobbridge/bulk/store.py runs it.
--
-- KEYS[1]: the run (hash)
-- ARGV[1]: who asks
-- Returns: 1 when asked (or asked before: the first asker is kept), 0 when there is no run.

if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
redis.call('HSETNX', KEYS[1], 'cancel_by', ARGV[1])
return 1
