"""Keeping the idle server small: what a running configuration never uses
is never loaded.

Twisted's reactor imports pyOpenSSL whenever it is installed (for
`listenSSL` and `startTLS`), and with it cryptography's X.509 bindings,
service_identity and Twisted's own TLS glue; twisted.web imports h2 whenever
it is installed, although it speaks HTTP/2 only when TLS (ALPN) negotiates
it. About 6.5 MiB of RSS in every server process. Only federation uses TLS
(its listener and its outgoing requests); the Client-Server API is plain
HTTP/1.1 behind the operator's proxy.
"""

from __future__ import annotations

import ctypes
import sys

# Modules only a TLS-speaking server uses.
TLS_ONLY = ("OpenSSL", "h2")


def leave_tls_unloaded() -> None:
    """For a server without federation: let Twisted find pyOpenSSL and h2
    absent, a case it supports (its TLS entry points then raise, and HTTP/2
    is off). Call before the reactor is imported; a module already loaded
    stays as it is."""
    for name in TLS_ONLY:
        if name not in sys.modules:
            sys.modules[name] = None  # type: ignore[assignment]  # its import raises ImportError


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
