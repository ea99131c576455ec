-- What every node of the test cluster does first (the tests put this file before each node's
-- own script): Max-Forwards, CANCEL, and in-dialog requests along their Route set. True when
-- it handled the request.
function cluster_prelude()
  if KSR.maxfwd.process_maxfwd(10) < 0 then
    KSR.sl.sl_send_reply(483, "Too Many Hops")
    return true
  end
  if KSR.is_CANCEL() then
    if KSR.tm.t_check_trans() > 0 then KSR.tm.t_relay() end
    return true
  end
  if KSR.pv.get("$tt") ~= nil then
    if KSR.rr.loose_route() > 0 then
      KSR.tm.t_relay()
    elseif KSR.is_ACK() then
      if KSR.tm.t_check_trans() > 0 then KSR.tm.t_relay() end
    else
      KSR.sl.sl_send_reply(404, "Not Here")
    end
    return true
  end
  return false
end
