-- Settle one admitted request: keep the units it cost, give the rest back to the usage
-- counters, the quota and the rate window, atomically and once.
--
-- KEYS[1] rate, KEYS[2] quota, KEYS[3] usage hash of the request's minute,
-- KEYS[4] the minute's request tokens (hit.lua records each admitted request's token there)
-- ARGV: units to give back, interval_us, the counters' suffix "<key>:<endpoint>",
--       now_us (-1 = the server's clock), the request's token, the minute, and what to do:
--   'settle' a billable outcome: give back the units it did not use; the request stays counted
--   'error'  an outcome that is not billable: every unit and the request go back, and the
--            call is counted as an error
--   'void'   the caller never got hit.lua's reply and gives up on the request: a copy yet to
--            run finds the token void and counts nothing; one that ran is given back whole
-- Returns {code, units given back, 1 if settled as an error else 0}:
--   1 given back now; 0 too late: the minute was drained by the rollup (the rolled-up row is
--   final; quota and rate stay consistent with it) or the token is forgotten, nothing changed;
--   2 a voided request had not been admitted (nothing to give back);
--   3 settled before: nothing changed, the figures are the first settle's.
--
-- Exactly once: a settle marks the token '<token>:s' in the same hash before it changes
-- anything, inside this script, which Redis runs atomically
-- (https://redis.io/docs/latest/develop/interact/programmability/eval-intro/), so a settle
-- sent twice, or retried after a lost reply, finds the mark and returns the first figures.
-- The mark lives as long as the token (hit.lua: 180 s from the minute's start).
local amount = tonumber(ARGV[1])
local suffix = ARGV[3]
local token = ARGV[5]
local kind = ARGV[7]
local mark = token .. ':s'
local now = tonumber(ARGV[4])
if now < 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local found = redis.call('HMGET', KEYS[4], token, mark)
local recorded, settled = found[1], found[2]
if kind == 'void' then
  -- Marked void first, so a copy of the request that has yet to run counts nothing; kept as
  -- long as hit.lua keeps tokens.
  redis.call('HSET', KEYS[4], token, 'void')
  redis.call('EXPIRE', KEYS[4], math.max(1, tonumber(ARGV[6]) + 180 - math.floor(now / 1000000)))
  if not recorded or recorded == 'void' then return {2, 0, 0} end
else
  if settled then
    local given, error = string.match(settled, '^(%d+):(%d)$')
    return {3, tonumber(given), tonumber(error)}
  end
  if not recorded or recorded == 'void' then return {0, 0, 0} end
end
if redis.call('EXISTS', KEYS[3]) == 0 then return {0, 0, 0} end
local error = 0
if kind == 'error' then error = 1 end
if kind ~= 'void' then
  redis.call('HSET', KEYS[4], mark, string.format('%d:%d', amount, error))
end
if kind ~= 'settle' then
  redis.call('HINCRBY', KEYS[3], 'r:' .. suffix, -1)
end
if error == 1 then
  redis.call('HINCRBY', KEYS[3], 'e:' .. suffix, 1)
end
-- Nothing to give back skips the rest; Redis would refuse "HINCRBY ... -0" anyway (Lua
-- formats minus zero as "-0", which is not an integer: redis/redis#11683).
if amount > 0 then
  redis.call('HINCRBY', KEYS[3], 'u:' .. suffix, -amount)
  if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('DECRBY', KEYS[2], amount) end
  local tat = redis.call('GET', KEYS[1])
  if tat then
    local new_tat = tonumber(tat) - amount * tonumber(ARGV[2])
    if new_tat <= now then
      redis.call('DEL', KEYS[1])
    else
      redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil((new_tat - now) / 1000) + 1000)
    end
  end
end
return {1, amount, error}
