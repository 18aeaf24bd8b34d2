-- Move up to ARGV[2] pending steps of one model into a new batch job, in one atomic step,
-- so two pollers never put a step into two jobs.
-- KEYS[1] pending hash (reservation -> item), KEYS[2] pending zset (model -> oldest park
-- time), KEYS[3] the new job's item hash (custom id -> item), KEYS[4] jobs hash (id -> meta)
-- ARGV[1] model, ARGV[2] limit, ARGV[3] job id, ARGV[4] job meta json, ARGV[5] now,
-- ARGV[6] the TTL every key written here gets (refreshed on each write)
local limit = tonumber(ARGV[2])
local all = redis.call('HGETALL', KEYS[1])
local n = 0
for i = 1, #all, 2 do
  if n >= limit then break end
  redis.call('HSET', KEYS[3], 'r' .. n, all[i + 1])
  redis.call('HDEL', KEYS[1], all[i])
  n = n + 1
end
if n > 0 then
  redis.call('HSET', KEYS[4], ARGV[3], ARGV[4])
  redis.call('EXPIRE', KEYS[3], ARGV[6])
  redis.call('EXPIRE', KEYS[4], ARGV[6])
end
if redis.call('HLEN', KEYS[1]) == 0 then
  redis.call('ZREM', KEYS[2], ARGV[1])
else
  redis.call('ZADD', KEYS[2], ARGV[5], ARGV[1])
end
return n
