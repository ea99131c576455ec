"""kamailio.cfg: preprocessor, core parameters, loadmodule/modparam/cfgengine, route blocks."""
