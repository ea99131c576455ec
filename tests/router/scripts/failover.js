// Keepalive answer, hop limit, relay to the primary with a mark, failover to the secondary on
// busy or timeout. The same logic is in failover.lua, failover.py and failover_native.cfg.
var PRIMARY = "sip:127.0.0.1:5080";
var SECONDARY = "sip:127.0.0.1:5090";

function ksr_request_route() {
	if (KSR.is_OPTIONS() && KSR.pv.is_null("$rU")) {
		KSR.sl.sl_send_reply(200, "Keepalive");
		return 1;
	}
	if (KSR.maxfwd.process_maxfwd(10) < 0) {
		KSR.sl.sl_send_reply(483, "Too Many Hops");
		return 1;
	}
	KSR.hdr.append("X-Route: primary\r\n");
	KSR.setdsturi(PRIMARY);
	KSR.info("relaying " + KSR.pv.get("$rm") + " " + KSR.pv.get("$ru") + " to primary\n");
	KSR.pv.sets("$avp(route)", "primary");
	KSR.tm.t_on_failure("ksr_failover");
	if (KSR.tm.t_relay() < 0) {
		KSR.sl.sl_reply_error();
	}
	return 1;
}

function ksr_failover() {
	if (KSR.tm.t_is_canceled() > 0) {
		return 1;
	}
	if (KSR.tm.t_check_status("486|408") > 0) {
		KSR.info("failover to secondary after " + KSR.pv.get("$T_reply_code") + "\n");
		KSR.setdsturi(SECONDARY);
		KSR.tm.t_relay();
	}
	return 1;
}
