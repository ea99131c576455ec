-- A registrar proxy: REGISTER is saved in the shared location table, other requests go to
-- the contacts registered for their R-URI (404 when there are none). Runs after cluster.lua
-- (the tests join the files); a script joined after it may define new_call() (redis.lua).

function ksr_request_route()
  if KSR.is_OPTIONS() and KSR.pv.is_null("$rU") then
    KSR.sl.sl_send_reply(200, "Keepalive")  -- the dispatcher's keepalives
    return
  end
  if cluster_prelude() then return end
  if KSR.is_REGISTER() then
    KSR.registrar.save("location", 0)
    return
  end
  KSR.rr.record_route()
  if new_call then new_call() end
  if KSR.registrar.lookup("location") < 0 then
    KSR.sl.sl_send_reply(404, "Not Found")
    return
  end
  KSR.tm.t_relay()
end
