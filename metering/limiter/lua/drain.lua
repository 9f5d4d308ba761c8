-- Seal one minute's usage hash for the rollup and return its counters.
-- A crashed rollup that runs again finds the sealed hash and gets the same counters back.
--
-- KEYS[1] live usage hash, KEYS[2] drained (sealed) usage hash
if redis.call('EXISTS', KEYS[2]) == 0 and redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('RENAME', KEYS[1], KEYS[2])
end
return redis.call('HGETALL', KEYS[2])
