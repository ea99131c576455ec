-- The front of the cluster: load balancing over set 1 with failover.
function ksr_request_route()
  if KSR.maxfwd.process_maxfwd(10) < 0 then
    KSR.sl.sl_send_reply(483, "Too Many Hops")
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
  if not KSR.is_REGISTER() then KSR.rr.record_route() end
  if KSR.dispatcher.ds_select_dst(1, 4) < 0 then
    KSR.sl.sl_send_reply(503, "No Proxy Available")
    return
  end
  KSR.tm.t_on_failure("ksr_failure_dispatch")
  KSR.tm.t_relay()
end

function ksr_failure_dispatch()
  if KSR.tm.t_is_canceled() > 0 then return end
  if KSR.tm.t_check_status("500|503") > 0
      or (KSR.tm.t_branch_timeout() > 0 and KSR.tm.t_branch_replied() < 0) then
    KSR.dispatcher.ds_mark_dst_state("ip")
    if KSR.dispatcher.ds_next_dst() > 0 then
      KSR.tm.t_on_failure("ksr_failure_dispatch")
      KSR.tm.t_relay()
    end
  end
end
