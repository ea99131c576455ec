-- Keepalive answer, hop limit, relay to the primary with a mark, failover to the secondary on
-- busy or timeout. The same logic is in failover.py, failover.js and failover_native.cfg.
PRIMARY = "sip:127.0.0.1:5080"
SECONDARY = "sip:127.0.0.1:5090"

function ksr_request_route()
	if KSR.is_OPTIONS() and KSR.pv.is_null("$rU") then
		KSR.sl.sl_send_reply(200, "Keepalive")
		return 1
	end
	if KSR.maxfwd.process_maxfwd(10) < 0 then
		KSR.sl.sl_send_reply(483, "Too Many Hops")
		return 1
	end
	KSR.hdr.append("X-Route: primary\r\n")
	KSR.setdsturi(PRIMARY)
	KSR.info("relaying " .. KSR.pv.get("$rm") .. " " .. KSR.pv.get("$ru") .. " to primary\n")
	KSR.pv.sets("$avp(route)", "primary")
	KSR.tm.t_on_failure("ksr_failover")
	if KSR.tm.t_relay() < 0 then
		KSR.sl.sl_reply_error()
	end
	return 1
end

function ksr_failover()
	if KSR.tm.t_is_canceled() > 0 then
		return 1
	end
	if KSR.tm.t_check_status("486|408") > 0 then
		KSR.info("failover to secondary after " .. KSR.pv.get("$T_reply_code") .. "\n")
		KSR.setdsturi(SECONDARY)
		KSR.tm.t_relay()
	end
	return 1
end
