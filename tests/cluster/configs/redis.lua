-- A registrar proxy that counts each new call in Redis (shared by every proxy): when Redis is
-- away the count fails (logged) and the call goes on.
function ksr_request_route()
  if KSR.maxfwd.process_maxfwd(10) < 0 then
    KSR.sl.sl_send_reply(483, "Too Many Hops")
    return
  end
  if KSR.is_OPTIONS() and KSR.pv.is_null("$rU") then
    KSR.sl.sl_send_reply(200, "Keepalive")  -- the dispatcher's keepalives
    return
  end
  if KSR.is_CANCEL() then
    if KSR.tm.t_check_trans() > 0 then KSR.tm.t_relay() end
    return
  end
  if KSR.pv.get("$tt") ~= nil then
    if KSR.rr.loose_route() > 0 then
      KSR.tm.t_relay()
    elseif KSR.is_ACK() then
      if KSR.tm.t_check_trans() > 0 then KSR.tm.t_relay() end
    else
      KSR.sl.sl_send_reply(404, "Not Here")
    end
    return
  end
  if KSR.is_REGISTER() then
    KSR.registrar.save("location", 0)
    return
  end
  KSR.rr.record_route()
  if KSR.is_INVITE() then
    if KSR.ndb_redis.redis_cmd("shared", "INCR calls", "r") < 0 then
      KSR.err("call not counted: redis unavailable\n")
    end
  end
  if KSR.registrar.lookup("location") < 0 then
    KSR.sl.sl_send_reply(404, "Not Found")
    return
  end
  KSR.tm.t_relay()
end
