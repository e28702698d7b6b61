-- Take, keep or give up the lease that makes one replica the runner of a queue's census, so
-- that two replicas asked at once do not read the same queue twice.
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
if holder == false then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if holder == ARGV[1] then
  -- SET rather than PEXPIRE: the commands of an operator's ACL user (jobbridge acl) suffice
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
