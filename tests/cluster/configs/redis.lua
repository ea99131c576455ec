-- Joined after proxy.lua: each new call is counted in Redis (shared by every proxy); when
-- Redis is away the count fails (logged) and the call goes on.
function new_call()
  if KSR.is_INVITE() and KSR.ndb_redis.redis_cmd("shared", "INCR calls", "r") < 0 then
    KSR.err("call not counted: redis unavailable\n")
  end
end
