-- Store a census's progress or result, only while the writer holds the queue's census lease;
-- renews the lease, and gives it up with the last write.
--
-- KEYS[1]: the lease (string: the runner's token)
-- KEYS[2]: the result (hash: state, total, read, names, … see census/store.py)
-- ARGV[1]: the runner's token
-- ARGV[2]: the lease's life, ms
-- ARGV[3]: seconds the result lives after this write (EXPIRE)
-- ARGV[4]: "1" to replace the whole hash (a census's first write), else "0"
-- ARGV[5]: "1" when this is the last write (the lease is given up), else "0"
-- ARGV[6 ..]: field, value pairs
-- Returns: 1 when written, -1 when the lease is not held by this token (nothing written).

if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return -1
end
if ARGV[4] == '1' then
  redis.call('DEL', KEYS[2])
end
if #ARGV > 5 then
  redis.call('HSET', KEYS[2], unpack(ARGV, 6))
end
redis.call('EXPIRE', KEYS[2], ARGV[3])
if ARGV[5] == '1' then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
return 1
