"""Structured, readable logs: `time level logger: message key=value ...`."""

from __future__ import annotations

import logging
import sys

from twisted.python import log as twisted_log

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def setup(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    # Route Twisted's own log messages through the standard logging tree.
    observer = twisted_log.PythonLoggingObserver(loggerName="twisted")
    observer.start()
