-- The front of the cluster: load balancing over set 1 with failover (after cluster.lua).

function ksr_request_route()
  if cluster_prelude() then return end
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
