-- Undo one admitted request whose outcome is not billable: usage counters, quota, rate window.
--
-- KEYS[1] rate, KEYS[2] quota, KEYS[3] usage hash of the request's minute
-- KEYS[4] (only to void a request whose reply never came) the minute's request tokens
-- ARGV: cost, interval_us, units field, requests field, now_us (-1 = the server's clock),
--       and with KEYS[4]: the request's token, the minute
-- Returns 1, or 0 when the minute was already drained by the rollup (nothing changed: the
-- rolled-up row is final, and quota and rate stay consistent with it), or 2 when a voided
-- request had not been admitted (nothing to give back).
if KEYS[4] then
  -- The token is marked void first, so a copy of the request that has yet to run finds it and
  -- counts nothing (see hit.lua); kept as long as hit.lua keeps tokens.
  local recorded = redis.call('HGET', KEYS[4], ARGV[6])
  redis.call('HSET', KEYS[4], ARGV[6], 'void')
  redis.call('EXPIREAT', KEYS[4], tonumber(ARGV[7]) + 150)
  if not recorded or recorded == 'void' then return 2 end
end
if redis.call('EXISTS', KEYS[3]) == 0 then return 0 end
local cost = tonumber(ARGV[1])
redis.call('HINCRBY', KEYS[3], ARGV[4], -1)
-- A free call took no units; Redis refuses "HINCRBY ... -0" (Lua formats minus zero as "-0").
if cost > 0 then
  redis.call('HINCRBY', KEYS[3], ARGV[3], -cost)
  if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('DECRBY', KEYS[2], cost) end
  local tat = redis.call('GET', KEYS[1])
  if tat then
    local now = tonumber(ARGV[5])
    if now < 0 then
      local t = redis.call('TIME')
      now = tonumber(t[1]) * 1000000 + tonumber(t[2])
    end
    local new_tat = tonumber(tat) - cost * tonumber(ARGV[2])
    if new_tat <= now then
      redis.call('DEL', KEYS[1])
    else
      redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil((new_tat - now) / 1000) + 1000)
    end
  end
end
return 1
