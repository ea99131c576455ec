"""Where the control socket lives: the ``unix:/path`` spec and the per-user default.

As root the default is ``/run/kemi/kemi_ctl`` (Kamailio's ``/run/kamailio/kamailio_ctl``). An
unprivileged user cannot write there, so the default becomes a directory only that user can
enter: ``$XDG_RUNTIME_DIR/kemi/`` (systemd's per-user runtime directory), else
``<tmp>/kemi-<uid>/``. ``kemi run`` and ``kemi rpc`` compute the same default, so both work
with no flags. ``$KEMI_CTL`` overrides the default for both.
"""

from __future__ import annotations

import os
import stat
import tempfile

from kemi_core.errors import KemiError

ROOT_DEFAULT = "/run/kemi/kemi_ctl"
SOCKET_NAME = "kemi_ctl"


class CtlPathError(KemiError, ValueError):
    """The control socket's spec or directory cannot be used; the text says why in one line."""


def default_spec() -> str:
    """``$KEMI_CTL`` if set, else the root or per-user default (``unix:/path``)."""
    env = os.environ.get("KEMI_CTL")
    if env:
        return env
    if os.geteuid() == 0:
        return f"unix:{ROOT_DEFAULT}"
    return f"unix:{os.path.join(user_runtime_dir(), SOCKET_NAME)}"


def user_runtime_dir() -> str:
    """The unprivileged user's directory for the socket (not created here)."""
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and os.path.isabs(xdg) and _owned_dir(xdg):
        return os.path.join(xdg, "kemi")
    return os.path.join(tempfile.gettempdir(), f"kemi-{os.geteuid()}")


def _owned_dir(path: str) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid()


def prepare_dir(path: str) -> None:
    """Create the socket's directory if needed. The per-user default is made 0700 and must be
    a directory of ours that nobody else can write (a shared temp dir is a place where another
    user could have created it first)."""
    directory = os.path.dirname(path) or "."
    private = os.path.dirname(os.path.abspath(path)) == os.path.abspath(user_runtime_dir())
    try:
        os.makedirs(directory, mode=0o700 if private else 0o755, exist_ok=True)
    except OSError as exc:
        raise CtlPathError(f"cannot create {directory}: {exc.strerror}") from None
    if not private:
        return
    st = os.lstat(directory)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        raise CtlPathError(f"{directory} is not a directory owned by this user")
    if st.st_mode & 0o022:
        raise CtlPathError(f"{directory} is writable by other users")


def runtime_dir() -> str:
    """kemi's directory for runtime files (control socket, FIFOs; Kamailio's rundir): the
    default control socket's directory, so /run/kemi as root and the per-user directory
    otherwise; the directory of ``$KEMI_CTL`` when that names a unix socket."""
    spec = default_spec()
    for prefix in ("unix:", "unixs:", "unixd:"):
        if spec.startswith(prefix):
            spec = spec[len(prefix):]
            break
    if os.path.isabs(spec):
        return os.path.dirname(spec)
    return os.path.dirname(ROOT_DEFAULT) if os.geteuid() == 0 else user_runtime_dir()


def runtime_path(name: str) -> str:
    """Where a runtime file named by a module parameter goes: an absolute ``name`` as it is,
    a relative one in :func:`runtime_dir` (as Kamailio puts relative FIFO names in its rundir,
    never in kemi's working directory or in Kamailio's own /run/kamailio)."""
    return name if os.path.isabs(name) else os.path.join(runtime_dir(), name)


def prepare_runtime_path(path: str) -> None:
    """Create the directory ``path`` goes in, with the control socket's rules (the per-user
    directory private to its user); CtlPathError (a KemiError) says in one line why not."""
    prepare_dir(path)
