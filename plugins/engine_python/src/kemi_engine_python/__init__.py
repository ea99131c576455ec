"""kemi's Python config engine (Kamailio's app_python / app_python3 / app_python3s).

``cfgengine "python"`` runs the routing callbacks of a Python script; ``import KSR`` inside the
script gives every KEMI export as a plain Python callable.
"""

from kemi_engine_python.engine import PythonEngine
from kemi_engine_python.stubs import write_stubs

__all__ = ["PythonEngine", "write_stubs"]
