-- One API request: rate limit (GCRA) + period quota + usage counters, atomically.
-- Every key carries the account's hash tag, so the script runs on Redis Cluster too.
--
-- KEYS[1] rate: theoretical arrival time in µs (absent = a full burst is available)
-- KEYS[2] quota: units counted in this billing period (absent = not seeded yet)
-- KEYS[3] usage hash of this minute, counters named <kind>:<key>:<endpoint>: u units,
--         r requests, l refused by the rate limit, q refused by the quota, c refused by the
--         spend cap, e errors (counted by give_back.lua)
-- KEYS[4] set of minutes with live usage hashes (what the rollup drains)
-- KEYS[5] the account's published cache version (absent = no change in the last minutes)
-- KEYS[6] the request tokens of this minute: token -> the reply that admitted it, or 'void'
-- ARGV: cost, interval_us, burst, quota_limit (-1 = none), seed (-1 = none), quota_ttl_s,
--       the counters' suffix "<key>:<endpoint>", the kind a quota refusal counts as (q or c),
--       minute, now_us (-1 = the server's clock),
--       the caller's cache version (-1 = do not check), this request's token
-- Returns {outcome, rate_remaining, rate_reset_us, retry_after_us, quota_used, now_us}
-- outcome: 0 admitted, 1 rate limited, 2 quota exceeded, 3 needs seed, 4 clock skew, 5 stale,
--          6 voided (the caller gave up on this request and said so)
--
-- The caller sends the same request again, with the same token, when the first reply did not
-- come in time: the first may have run (or may still run: it can sit in the server's input
-- buffer). Whichever runs first decides and, when it admits, records its reply under the
-- token; any other finds it and returns it without counting again. Refusals count nothing, so
-- they are not recorded: a repeat decides afresh (and counts its refusal once more).
--
-- A refusal counts one call refused, by reason, in the minute's usage hash: HINCRBY creates the
-- field (and the hash) at 0 (https://redis.io/docs/latest/commands/hincrby/), and the minute
-- joins the set the rollup walks. Same round trip; the rate and quota stay as they were.
local cost = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local burst_span = tonumber(ARGV[3]) * interval
local limit = tonumber(ARGV[4])
local seed = tonumber(ARGV[5])
local minute = tonumber(ARGV[9])
local now = tonumber(ARGV[10])
if now < 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
  -- The caller names the minute from its own clock; a web host whose clock is off by more
  -- than 30 s could write into a minute already rolled up, so it is refused instead. The
  -- minute may be the next one (a period that started inside this minute counts from the next).
  local offset = now - minute * 1000000
  if offset < -90000000 or offset > 90000000 then
    return {4, 0, 0, 0, 0, now}
  end
end

-- The skew check above refuses any request running more than 90 s after its minute began, so
-- a token kept until 180 s after that outlives every copy of its request; 180 s is also when
-- the rollup may drain the minute at the earliest (60 s + its 120 s grace), so a settle
-- (give_back.lua) finds the token, and its settled mark, for as long as it could give back.
local replay = redis.call('HGET', KEYS[6], ARGV[12])
if replay then
  if replay == 'void' then return {6, 0, 0, 0, 0, now} end
  local reply = {0}
  for figure in string.gmatch(replay, '[^:]+') do reply[#reply + 1] = tonumber(figure) end
  return reply
end

-- A principal read before the account's last change (published by the process that made it)
-- is refused as stale, so a revoke or a tier change holds on every process at once.
local version = tonumber(ARGV[11])
if version >= 0 then
  local published = redis.call('GET', KEYS[5])
  if published and tonumber(published) > version then
    return {5, 0, 0, 0, 0, now}
  end
end

local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end

local used = redis.call('GET', KEYS[2])
if not used then
  if seed < 0 then return {3, 0, 0, 0, 0, now} end
  redis.call('SET', KEYS[2], seed, 'EX', ARGV[6])
  used = seed
else
  used = tonumber(used)
end

local suffix = ARGV[7]
if cost > 0 and limit >= 0 and used + cost > limit then
  redis.call('HINCRBY', KEYS[3], ARGV[8] .. ':' .. suffix, 1)
  redis.call('SADD', KEYS[4], minute)
  return {2, math.floor((now + burst_span - tat) / interval), tat - now, 0, used, now}
end

local new_tat = tat + cost * interval
local allow_at = new_tat - burst_span
if allow_at > now then
  redis.call('HINCRBY', KEYS[3], 'l:' .. suffix, 1)
  redis.call('SADD', KEYS[4], minute)
  return {1, math.floor((now + burst_span - tat) / interval), tat - now, allow_at - now, used, now}
end

if cost > 0 then
  redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil((new_tat - now) / 1000) + 1000)
  used = redis.call('INCRBY', KEYS[2], cost)
end
redis.call('HINCRBY', KEYS[3], 'u:' .. suffix, cost)
redis.call('HINCRBY', KEYS[3], 'r:' .. suffix, 1)
redis.call('SADD', KEYS[4], minute)
local remaining = math.floor((now + burst_span - new_tat) / interval)
-- '%d', not tostring: Lua 5.1 prints numbers with 14 significant digits, and now_us has 16.
redis.call('HSET', KEYS[6], ARGV[12],
  string.format('%d:%d:0:%d:%d', remaining, new_tat - now, used, now))
-- Counted from the clock this script decided by (Redis's own, or a test's): EXPIRE, not
-- EXPIREAT, so a test that admits calls in a past minute keeps their tokens too.
redis.call('EXPIRE', KEYS[6], math.max(1, minute + 180 - math.floor(now / 1000000)))
return {0, remaining, new_tat - now, 0, used, now}
