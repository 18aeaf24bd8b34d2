-- Session budgets in integer nano-dollars, one hash per (tenant, session):
--   limit (absent = ARGV default), spent, reserved, and r:<reservation id> -> amount.
-- Every operation is one atomic script run, so concurrent workers can never admit more than
-- the hard limit minus what is spent and already reserved.
-- KEYS[1] budget hash; ARGV[1] op; the rest depends on op.
local key = KEYS[1]
local op = ARGV[1]

local function num(field, default)
  local v = redis.call('HGET', key, field)
  if v then return tonumber(v) end
  return default
end

if op == 'reserve' then
  -- ARGV: reservation id, amount, default limit (-1 = unlimited), ttl seconds
  local rid, amount, default_limit, ttl = 'r:' .. ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
  local limit = num('limit', default_limit)
  local spent, reserved = num('spent', 0), num('reserved', 0)
  local held = redis.call('HGET', key, rid)
  if held then  -- a redelivered call keeps its reservation
    return {1, limit, spent, reserved}
  end
  if limit >= 0 and spent + reserved + amount > limit then
    return {0, limit, spent, reserved}
  end
  redis.call('HINCRBY', key, 'reserved', amount)
  redis.call('HSET', key, rid, amount)
  redis.call('EXPIRE', key, ttl)
  return {1, limit, spent, reserved + amount}
elseif op == 'settle' then
  -- ARGV: reservation id, actual amount
  local rid, actual = 'r:' .. ARGV[2], tonumber(ARGV[3])
  local held = redis.call('HGET', key, rid)
  if not held then return 0 end  -- settled already
  redis.call('HDEL', key, rid)
  redis.call('HINCRBY', key, 'reserved', -tonumber(held))
  redis.call('HINCRBY', key, 'spent', actual)
  return 1
elseif op == 'release_step' then
  -- ARGV: step id. Frees reservations a crashed call left behind.
  local prefix = 'r:' .. ARGV[2] .. ':'
  local freed = 0
  local fields = redis.call('HKEYS', key)
  for _, f in ipairs(fields) do
    if string.sub(f, 1, #prefix) == prefix then
      local held = tonumber(redis.call('HGET', key, f))
      redis.call('HDEL', key, f)
      redis.call('HINCRBY', key, 'reserved', -held)
      freed = freed + held
    end
  end
  return freed
end
return redis.error_reply('unknown budget op ' .. tostring(op))
