"""Kamailio 5.6 core parameter names, and which of them kemi implements.

The names come from the Kamailio 5.6 Core Cookbook (and were checked against `kamailio -c`).
A name in KNOWN but not in IMPLEMENTED is accepted with one warning and stored in
``CoreConfig.ignored``; a name in neither is a typo and refused with file:line.
"""

from __future__ import annotations

import enum


class Kind(enum.Enum):
    """How the value of an implemented parameter is read."""

    INT = "int"  # number (yes/no count as 1/0, as in Kamailio)
    BOOL = "bool"  # yes/no/on/off/true/false/enable/disable or a number
    STR = "str"  # quoted string
    STR_OR_ID = "str_or_id"  # quoted string or bare identifier (log_facility=LOG_LOCAL0)
    LISTEN = "listen"
    ALIAS = "alias"
    ENGINE = "engine"
    CALLBACK = "callback"  # kemi.*_callback: string, "none" means unset


#: Parameters kemi reads. Value: (kind, CoreConfig attribute or None when kept in ``extra``).
IMPLEMENTED: dict[str, tuple[Kind, str | None]] = {
    "debug": (Kind.INT, "debug"),
    "log_stderror": (Kind.BOOL, "log_stderror"),
    "log_prefix": (Kind.STR, "log_prefix"),
    "log_facility": (Kind.STR_OR_ID, "log_facility"),
    "log_engine_type": (Kind.STR_OR_ID, "log_engine_type"),
    "log_engine_data": (Kind.STR, "log_engine_data"),
    "fork": (Kind.BOOL, "fork"),
    "children": (Kind.INT, "children"),
    "auto_aliases": (Kind.BOOL, "auto_aliases"),
    "mpath": (Kind.STR, "mpath"),
    "loadpath": (Kind.STR, "mpath"),
    # Memory-manager logging levels: accepted and stored, meaningless in a Python server.
    "memdbg": (Kind.INT, "memdbg"),
    "mem_dbg": (Kind.INT, "memdbg"),
    "memlog": (Kind.INT, "memlog"),
    "mem_log": (Kind.INT, "memlog"),
    "port": (Kind.INT, "port"),
    "listen": (Kind.LISTEN, None),
    "alias": (Kind.ALIAS, None),
    "cfgengine": (Kind.ENGINE, None),
    # TLS (the tls module does the work): listen=tls:... is served only with enable_tls=yes,
    # and a listen without protocol then also opens TLS on its port + 1, as Kamailio does.
    "enable_tls": (Kind.BOOL, "enable_tls"),
    "tls_enable": (Kind.BOOL, "enable_tls"),
    "disable_tls": (Kind.BOOL, None),
    "tls_disable": (Kind.BOOL, None),
    "tcp_max_connections": (Kind.INT, "tcp_max_connections"),
    # this server's id in a cluster: usrloc stamps it on the contacts it saves (extra["server_id"])
    "server_id": (Kind.INT, None),
    "tcp_connection_lifetime": (Kind.INT, "tcp_connection_lifetime"),
    "kemi.request_route_callback": (Kind.CALLBACK, None),
    "kemi.reply_route_callback": (Kind.CALLBACK, None),
    "kemi.onsend_route_callback": (Kind.CALLBACK, None),
    "kemi.event_route_callback": (Kind.CALLBACK, None),
    "kemi.pre_routing_callback": (Kind.CALLBACK, None),
    "kemi.received_route_callback": (Kind.CALLBACK, None),
    # kemi's own limits (not Kamailio names): message size, header count, header line length.
    "max_msg_size": (Kind.INT, "max_msg_size"),
    "max_headers": (Kind.INT, "max_headers"),
    "max_header_line": (Kind.INT, "max_header_line"),
    # Shutdown: how long SIGTERM waits for transactions in progress before the workers are
    # killed (Kamailio's exit_timeout / ser_kill_timeout bound the whole shutdown the same way).
    "exit_timeout": (Kind.INT, "exit_timeout"),
    "ser_kill_timeout": (Kind.INT, "exit_timeout"),
    # TCP reading bounds (the names of Kamailio 5.7): a message must arrive whole this many
    # seconds after its first byte; a new connection must send its first byte within this time.
    "tcp_msg_read_timeout": (Kind.INT, "tcp_msg_read_timeout"),
    "tcp_msg_data_timeout": (Kind.INT, "tcp_msg_data_timeout"),
    # a message on TCP/TLS without Content-Length: refused (400, connection closed) unless set,
    # then it has no body (Kamailio: for HTTP-like peers that omit it)
    "tcp_accept_no_cl": (Kind.BOOL, "tcp_accept_no_cl"),
    # onsend_route also on the replies forwarded (statelessly or relayed by tm; not local ones)
    "onsend_route_reply": (Kind.BOOL, "onsend_route_reply"),
    "mhomed": (Kind.BOOL, "mhomed"),
    # kemi's worker supervision (not in Kamailio): seconds one message may keep a worker busy
    # before it is killed and replaced (0: never), and the resident memory (MB) past which a
    # worker is replaced once its transactions are done (0: no limit).
    "watchdog_timeout": (Kind.INT, "watchdog_timeout"),
    "worker_rss_limit": (Kind.INT, "worker_rss_limit"),
}

#: Kamailio 5.6 core parameters (aliases included) that kemi accepts but does not act on.
NOT_IMPLEMENTED: frozenset[str] = frozenset(
    """
    advertised_address advertised_port async_workers async_nonblock async_usleep
    async_workers_group auto_bind_ipv6 bind_ipv6_link_local check_via chroot corelog
    disable_core_dump force_rport fork_delay group gid http_reply_parse http_reply_hack
    ip_free_bind ipfreebind ip_nonlocal_bind ipv6_hex_style latency_cfg_log
    latency_limit_action latency_limit_db latency_log local_rport
    log_name log_prefix_mode log_color maxbuffer max_branches
    max_recursive_level max_while_loops mcast mcast_loopback mcast_ttl mem_join mem_safety
    mem_status_mode mem_summary mlock_pages modinit_delay
    open_files_limit phone2tel pmtu_discovery pv_buffer_size pv_buffer_slots pv_cache_limit
    pv_cache_action rundir run_dir received_route_mode reply_to_via route_locks_size
    server_header server_signature shm_force_alloc shm_mem_size sip_parser_log
    sip_parser_mode sip_warning socket_workers sql_buffer_size stats_name_separator tos
    udp_mtu udp_mtu_try_proto uri_host_extra_chars user uid user_agent_header
    verbose_startup version_table wait_worker1_mode wait_worker1_time wait_worker1_usleep
    workdir wdir xavp_via_params xavp_via_fields dns rev_dns dns_cache_del_nonexp
    dns_cache_delete_nonexpired dns_cache_rec_pref dns_cache_flags dns_cache_gc_interval
    dns_cache_init dns_cache_max_ttl dns_cache_mem dns_cache_min_ttl dns_cache_negative_ttl
    dns_naptr_ignore_rfc dns_retr_no dns_retr_time dns_search_full_match dns_servers_no
    dns_srv_lb dns_srv_loadbalancing dns_try_ipv6 dns_try_naptr dns_sctp_pref dns_tcp_pref
    dns_tls_pref dns_udp_pref dns_sctp_preference dns_tcp_preference dns_tls_preference
    dns_udp_preference dns_use_search_list use_dns_cache use_dns_failover disable_tcp
    tcp_accept_aliases tcp_accept_haproxy tcp_accept_hep3 tcp_accept_unique
    tcp_async tcp_buf_write tcp_children tcp_clone_rcvbuf tcp_connection_match
    tcp_connect_timeout tcp_conn_wq_max tcp_crlf_ping tcp_defer_accept tcp_delayed_ack
    tcp_fd_cache tcp_keepalive tcp_keepcnt tcp_keepidle tcp_keepintvl tcp_linger2
    tcp_no_connect tcp_poll_method tcp_rd_buf_size tcp_reuse_port tcp_script_mode
    tcp_send_timeout tcp_source_ipv4 tcp_source_ipv6 tcp_syncnt tcp_wait_data
    tcp_wq_blk_size tcp_wq_max tls_port_no tls_max_connections disable_sctp enable_sctp
    sctp_children sctp_socket_rcvbuf sctp_socket_receive_buffer sctp_socket_sndbuf
    sctp_socket_send_buffer sctp_autoclose sctp_send_ttl sctp_send_retries
    sctp_assoc_tracking sctp_assoc_reuse sctp_max_assocs sctp_srto_initial sctp_srto_max
    sctp_srto_min sctp_asocmaxrxt sctp_init_max_attempts sctp_init_max_timeo sctp_hbinterval
    sctp_pathmaxrxt sctp_sack_delay sctp_sack_freq sctp_max_burst udp4_raw udp4_raw_mtu
    udp4_raw_ttl dst_blocklist_expire dst_blocklist_ttl dst_blocklist_gc_interval
    dst_blocklist_init dst_blocklist_mem use_dst_blocklist real_time rt_policy rt_prio
    rt_timer1_policy rt_ftimer_policy rt_timer1_prio rt_fast_timer_prio rt_ftimer_prio
    rt_timer2_policy rt_stimer_policy rt_timer2_prio rt_stimer_prio
    """.split()  # noqa: SIM905 - a block of names reads best
)

#: Every name a kamailio.cfg may assign at the top level.
KNOWN: frozenset[str] = frozenset(IMPLEMENTED) | NOT_IMPLEMENTED

#: Kamailio's boolean words.
TRUE_WORDS = frozenset({"yes", "on", "true", "enable"})
FALSE_WORDS = frozenset({"no", "off", "false", "disable"})

#: syslog facilities log_facility accepts.
LOG_FACILITIES = frozenset(
    ["LOG_KERN", "LOG_USER", "LOG_MAIL", "LOG_DAEMON", "LOG_AUTH", "LOG_SYSLOG", "LOG_LPR",
     "LOG_NEWS", "LOG_UUCP", "LOG_CRON", "LOG_AUTHPRIV", "LOG_FTP"]
    + [f"LOG_LOCAL{i}" for i in range(8)]
)

#: Route block keywords, the kind each is stored as, and whether a [NAME] is allowed.
ROUTE_KEYWORDS: frozenset[str] = frozenset({
    "request_route", "route", "reply_route", "onreply_route", "failure_route", "branch_route",
    "branch_failure_route", "onsend_route", "event_route",
})
