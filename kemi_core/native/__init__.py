"""The native kamailio.cfg routing language: lexer -> parser (AST) -> compiled closures.

Entry points: :class:`NativeEngine` (the Engine the core runs) and :func:`check_blocks`
(``kemi check``: every error of every route block, with file:line:column).
"""

from kemi_core.native.check import CheckResult, check_blocks
from kemi_core.native.engine import NativeEngine

__all__ = ["CheckResult", "NativeEngine", "check_blocks"]
