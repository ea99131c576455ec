"""kamailio.cfg: preprocessor, core parameters, loadmodule/modparam/cfgengine, route blocks.

    from kemi_core.config import parse_config, parse_config_text
    cfg = parse_config("/etc/kamailio/kamailio.cfg", defines={"WITH_DEBUG": ""})

Errors are ``ConfigError(reason, file, line)``; warnings go to the "kemi.config" logger.
"""

from kemi_core.config.model import CoreConfig
from kemi_core.config.parser import parse_config, parse_config_text

__all__ = ["CoreConfig", "parse_config", "parse_config_text"]
