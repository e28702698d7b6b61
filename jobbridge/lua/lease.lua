-- Take, keep or give up a lease: the key that makes one replica the one doing a piece of
-- background work (writing a source's chart series, running a queue's census), so that
-- replicas sharing a Redis do not do it twice. jobbridge/leases.py runs it.
--
-- KEYS[1]: the lease (string: the holder's token)
-- ARGV[1]: the taker's token
-- ARGV[2]: the lease's life, ms (PX); 0 gives the lease up when this token holds it
-- Returns: 1 when this token holds the lease now (taken or renewed), 0 when another does
--   (or when it was given up).

local holder = redis.call('GET', KEYS[1])
if ARGV[2] == '0' then
  if holder == ARGV[1] then
    redis.call('DEL', KEYS[1])
  end
  return 0
end
if holder == false or holder == ARGV[1] then
  -- SET PX renews too: an operator's ACL user (jobbridge acl) may SET but not PEXPIRE
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
