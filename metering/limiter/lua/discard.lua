-- Forget a drained minute once its rollup is committed to the database.
--
-- KEYS[1] drained usage hash, KEYS[2] set of minutes, KEYS[3] live usage hash
-- ARGV[1] the minute
redis.call('DEL', KEYS[1])
if redis.call('EXISTS', KEYS[3]) == 0 then redis.call('SREM', KEYS[2], ARGV[1]) end
return 1
