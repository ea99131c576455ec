"""One QuickJS context with the KSR object and the routing script loaded.

``KSR`` and each ``KSR.<module>`` are empty objects whose prototype is a Proxy: the first
read of a name that is not there asks Python (the :class:`Resolver`), which binds the export
and hands JS the function; JS stores it on the object itself, so every later
``KSR.tm.t_relay()`` is two plain property reads and the call of a Python callable. A name
that is no KEMI function is stored as ``undefined`` (JS then reports "not a function" with
the script's line).

QuickJS names every evaluated text ``<input>``: one script is loaded per context, so its
errors get the script's path back (``file:line: message`` and a stack of ``path:line:col``).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import quickjs

from kemi_core.api import ScriptError

if TYPE_CHECKING:
    from kemi_engine_jsdt.resolver import Resolver

#: Hides the two resolver callables in a closure and defines the global KSR.
PRELUDE = r"""
(function () {
  var top = globalThis.__ksr_top, member = globalThis.__ksr_member;
  delete globalThis.__ksr_top;
  delete globalThis.__ksr_member;
  function take() {
    var fn = globalThis.__ksr_fn;
    delete globalThis.__ksr_fn;
    return fn;
  }
  function own(obj, key, value) {
    Object.defineProperty(obj, key, {value: value, enumerable: value !== undefined});
    return value;
  }
  function lazy(resolve) {
    return Object.create(new Proxy(Object.create(null), {
      get: function __ksr_get(target, key, receiver) {
        return typeof key === 'string' ? own(receiver, key, resolve(key)) : undefined;
      }
    }));
  }
  function module(name) {
    return lazy(function __ksr_member(key) { return member(name, key) ? take() : undefined; });
  }
  var KSR = lazy(function __ksr_top(key) {
    var kind = top(key);
    return kind === 1 ? module(key) : kind === 2 ? take() : undefined;
  });
  Object.defineProperty(globalThis, 'KSR', {value: KSR, enumerable: true});
})();
(function (name) { return typeof globalThis[name] === 'function'; })
"""

#: ``(<input>:12:5)`` or ``at <input>:12:5`` in QuickJS's messages and stacks.
_PLACE = re.compile(r"<input>:(\d+)(?::(\d+))?")
#: Stack frames of the prelude (the first resolution of a KSR name), not of the script.
_PRELUDE_FRAME = re.compile(r"^\s*at __ksr_")


#: Stack frames an error log shows at most.
MAX_FRAMES = 20


def script_frames(lines: list[str]) -> list[str]:
    return [ln for ln in lines if not _PRELUDE_FRAME.match(ln)]


class JsRuntime:
    """A QuickJS context running one script (build a new one to reload)."""

    def __init__(self, resolver: Resolver) -> None:
        self.context = quickjs.Context()
        self.path = ""
        resolver.attach(self.context)
        self.context.add_callable("__ksr_top", resolver.top)
        self.context.add_callable("__ksr_member", resolver.member)
        self._is_function = self.context.eval(PRELUDE)
        #: name -> the script's function, read in place by the engine's run
        self.functions: dict[str, Any] = {}

    def load(self, path: str, source: str) -> None:
        """Run the script's top level (its function definitions); ScriptError with
        ``file:line: reason`` for a syntax or run-time error there."""
        self.path = path
        try:
            self.context.eval(source)
        except quickjs.JSException as exc:
            raise ScriptError(self.error_text(str(exc))) from None

    def has(self, name: str) -> bool:
        """Whether the global ``name`` is a function (asked for every reply and forwarded
        request). For a name that never ran (usually no function: a script without a reply
        route) the global is read from Python first, a third of the cost of a call into JS:
        only an object can be a function, and JS's typeof is asked only then."""
        if name not in self.functions:
            try:
                value = self.context.get(name)
            except TypeError:  # a BigInt (the binding does not convert it): not a function
                return False
            if value.__class__ is not quickjs.Object:
                return False
        return bool(self._is_function(name))

    def function(self, name: str) -> Any:
        """The script's global function ``name`` (a callable), or None."""
        fn = self.functions.get(name)
        if fn is None and self.has(name):
            fn = self.functions[name] = self.context.get(name)
        return fn

    def location(self) -> str | None:
        """``file:line`` of the innermost script frame running now (called from a KSR
        function: the debugger's cfgtrace, the watchdog's report)."""
        try:
            stack = self.context.eval("new Error().stack")
        except quickjs.JSException:
            return None
        for line in script_frames(str(stack).strip().splitlines()[1:]):  # [0]: this eval
            m = _PLACE.search(line)
            if m:
                return f"{self.path}:{m.group(1)}"
        return None

    def error_text(self, text: str, reason: str | None = None) -> str:
        """``path:line: message`` and the JS stack (``<input>`` replaced by the path) from
        QuickJS's text of an error; ``reason`` replaces the message (a Python error)."""
        lines = [ln for ln in text.strip().splitlines() if ln.strip()]
        message = reason or (lines[0] if lines else "error")
        frames = script_frames(lines[1:]) or lines[1:]
        if len(frames) > MAX_FRAMES:  # a runaway recursion: its first frames tell enough
            frames = [*frames[:MAX_FRAMES], f"    ... {len(frames) - MAX_FRAMES} more frames"]
        stack = [_PLACE.sub(lambda m: f"{self.path}:{m.group(0)[8:]}", ln) for ln in frames]
        m = next((m for m in map(_PLACE.search, frames or lines[:1]) if m), None)
        where = f"{self.path}:{m.group(1)}" if m else self.path
        return "\n".join([f"{where}: {message}", *stack])
