"""kemi_tm: Kamailio's tm module (stateful SIP transactions) for kemi.

The sans-IO transaction layer lives in ``timers``, ``keys``, ``actions``, ``client``,
``server``, ``proxy`` and ``table``; the KEMI glue (t_relay, ...) builds on ``proxy``.
"""
