-- Budgets in integer nano-dollars and tokens, one hash per scope (a session, an agent, a
-- tenant): limit / tlimit (hard; absent = the ARGV default, -1 = none), soft / tsoft (read
-- by the economy check, not here), spent, reserved, tspent, treserved, overshoot (what
-- settled calls cost beyond their reservations), and r:<reservation id> -> "<nano>:<tokens>".
-- Every operation is one atomic script run over all of a step's scopes, so concurrent
-- workers can never admit more than any scope's hard limit minus what is spent and reserved.
-- KEYS: the step's scope hashes. ARGV[1]: op; the rest depends on op.
local op = ARGV[1]

local function num(key, field, default)
  local v = redis.call('HGET', key, field)
  if v then return tonumber(v) end
  return default
end

local function held(key, rid)
  local v = redis.call('HGET', key, rid)
  if not v then return nil end
  local sep = string.find(v, ':', 1, true)
  if not sep then return tonumber(v), 0 end
  return tonumber(string.sub(v, 1, sep - 1)), tonumber(string.sub(v, sep + 1))
end

local function release(key, rid)
  local amount, tokens = held(key, rid)
  if not amount then return 0 end
  redis.call('HDEL', key, rid)
  redis.call('HINCRBY', key, 'reserved', 0 - amount)  -- never -0, which HINCRBY refuses
  redis.call('HINCRBY', key, 'treserved', 0 - tokens)
  return amount
end

if op == 'reserve' then
  -- ARGV: reservation id, amount, tokens, ttl, allowance (nano-dollars) and token allowance
  -- beyond the limits (a best-effort close; 0 for any other call), then per key: default
  -- limit, default tlimit.
  -- Returns 0 when all scopes admit it, else the 1-based index of the first that refuses.
  local rid, amount, tokens, ttl = 'r:' .. ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
  local allowance, tallowance = tonumber(ARGV[6]), tonumber(ARGV[7])
  if held(KEYS[1], rid) then return 0 end  -- a redelivered call keeps its reservation
  for i, key in ipairs(KEYS) do
    local limit = num(key, 'limit', tonumber(ARGV[6 + 2 * i]))
    local tlimit = num(key, 'tlimit', tonumber(ARGV[7 + 2 * i]))
    if limit >= 0 and num(key, 'spent', 0) + num(key, 'reserved', 0) + amount > limit + allowance then
      return i
    end
    if tlimit >= 0 and num(key, 'tspent', 0) + num(key, 'treserved', 0) + tokens > tlimit + tallowance then
      return i
    end
  end
  for _, key in ipairs(KEYS) do
    redis.call('HINCRBY', key, 'reserved', amount)
    redis.call('HINCRBY', key, 'treserved', tokens)
    redis.call('HSET', key, rid, amount .. ':' .. tokens)
    redis.call('EXPIRE', key, ttl)
  end
  return 0
elseif op == 'settle' then
  -- ARGV: reservation id, actual amount, actual tokens, ttl.
  -- Returns {1, reserved amount} when this call settled it, {0, 0} when it was settled
  -- before. The real cost is always added (it was spent); any part of it beyond the
  -- reservation is added to 'overshoot' as well, so the excess is never unseen.
  local rid, actual, tokens, ttl = 'r:' .. ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
  local settled, reserved = 0, 0
  for i, key in ipairs(KEYS) do
    if held(key, rid) then  -- else settled already
      local amount = release(key, rid)
      if i == 1 then reserved = amount end
      redis.call('HINCRBY', key, 'spent', actual)
      redis.call('HINCRBY', key, 'tspent', tokens)
      if actual > amount then
        redis.call('HINCRBY', key, 'overshoot', actual - amount)
      end
      redis.call('EXPIRE', key, ttl)
      settled = 1
    end
  end
  return {settled, reserved}
elseif op == 'release_step' then
  -- ARGV: the step's reservation prefix. Frees reservations a crashed call left behind.
  local prefix = 'r:' .. ARGV[2]
  local freed = 0
  for i, key in ipairs(KEYS) do
    for _, f in ipairs(redis.call('HKEYS', key)) do
      if string.sub(f, 1, #prefix) == prefix then
        local amount = release(key, f)
        if i == 1 then freed = freed + amount end
      end
    end
  end
  return freed
end
return redis.error_reply('unknown budget op ' .. tostring(op))
