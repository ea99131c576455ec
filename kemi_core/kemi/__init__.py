"""KEMI export records and the registry that scripts see as ``KSR``."""

from kemi_core.kemi.exports import KemiExport, ParamKind, ReturnKind, export
from kemi_core.kemi.registry import KemiRegistry

__all__ = ["KemiExport", "KemiRegistry", "ParamKind", "ReturnKind", "export"]
