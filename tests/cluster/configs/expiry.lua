-- A registrar proxy: REGISTER is saved in the shared location table, other requests go to
-- the contacts registered for their R-URI (404 when there are none).
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
  if KSR.registrar.lookup("location") < 0 then
    KSR.sl.sl_send_reply(404, "Not Found")
    return
  end
  KSR.tm.t_relay()
end
