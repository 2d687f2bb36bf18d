"""Keeping the idle server small: what a running configuration never uses
is never loaded.

- TLS. Only federation speaks it (its listener and its outgoing requests);
  the Client-Server API is plain HTTP/1.1 behind the operator's proxy. Yet
  Twisted's reactor imports pyOpenSSL whenever it is installed (with
  cryptography's X.509 bindings and service_identity), twisted.web imports h2
  (HTTP/2 needs TLS's ALPN), and the standard library's http.client, which
  Twisted imports, loads `ssl` with libssl: about 7.5 MiB in a server that
  never makes a TLS connection.
- OpenSSL's hashes. `hashlib` and `hmac` load libcrypto (3.5 MiB) for SHA-2
  and SHA-1, which Python also builds in. The built-ins are slower on long
  inputs (2.8 against 0.7 us for an 800-byte event) and as fast on tokens;
  hashing is a fraction of a percent of a message's cost.
- Docstrings and asserts: see `reexec_optimised`.

Each hidden module is marked absent in `sys.modules`, which its importers
support: Twisted raises from its TLS entry points and leaves HTTP/2 off,
http.client and asyncio leave out HTTPS, hashlib and hmac use the built-ins.
"""

from __future__ import annotations

import ctypes
import os
import sys

# Modules only a TLS-speaking server uses.
TLS_ONLY = ("OpenSSL", "h2", "ssl", "_ssl")
# OpenSSL's hash functions; Python's built-in ones serve instead.
OPENSSL_HASHES = "_hashlib"


def _mark_absent(names: tuple[str, ...]) -> None:
    for name in names:
        if name not in sys.modules:  # a module already loaded stays as it is
            sys.modules[name] = None  # type: ignore[assignment]  # its import raises ImportError


def use_builtin_hashes() -> None:
    """Call before anything imports hashlib or hmac (the configuration does)."""
    _mark_absent((OPENSSL_HASHES,))


def leave_tls_unloaded() -> None:
    """For a server without federation. Call before the reactor is imported."""
    _mark_absent(TLS_ONLY)


def reexec_optimised(argv: list[str]) -> None:
    """Restart this process as `python -OO -m homeserver ARGV`, unless it
    already runs that way. Stripping docstrings and asserts leaves the code
    objects of some 650 modules 4 MiB smaller (asserts in this code base
    only narrow types for the type checker). The process keeps its PID, its
    open files and Python's other command-line flags."""
    if sys.flags.optimize >= 2 or not sys.executable:
        return
    from subprocess import _args_from_interpreter_flags  # the flags multiprocessing passes on

    flags = [flag for flag in _args_from_interpreter_flags() if not flag.startswith("-O")]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, *flags, "-OO", "-m", "homeserver", *argv])


# glibc's mallopt parameter number for the arena limit (malloc.h: M_ARENA_MAX).
_M_ARENA_MAX = -8


def limit_malloc_arenas(arenas: int = 2) -> None:
    """glibc gives each thread that allocates its own malloc arena (up to eight
    per core), each holding on to its free memory. Python threads take turns
    under the GIL, so a few arenas serve them as well: this saves a megabyte
    or more of idle memory with the database and hashing threads. Call before
    those threads start; elsewhere than glibc it does nothing."""
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    mallopt(_M_ARENA_MAX, arenas)
