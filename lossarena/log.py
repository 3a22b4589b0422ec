"""Logging for every lossarena tool: library modules log, the command line decides what is shown.

Library code gets its logger with ``logging.getLogger(__name__)`` (all under the ``lossarena``
logger) and never prints. The top-level CLI calls :func:`configure` once with the count of
``-v``/``-q`` flags; without it, Python's default applies (warnings and errors on stderr).
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

ROOT = "lossarena"
_HANDLER_NAME = "lossarena-cli"
_LEVELS = {-2: logging.CRITICAL, -1: logging.ERROR, 0: logging.WARNING, 1: logging.INFO, 2: logging.DEBUG}


def level_for(verbosity: int) -> int:
    """The logging level for a verbosity (``-q`` = -1 ... ``-vv`` = 2): 0 -> WARNING, 1 -> INFO, 2+ -> DEBUG,
    -1 -> ERROR, -2 or less -> CRITICAL."""
    return _LEVELS[max(-2, min(2, int(verbosity)))]


def configure(verbosity: int = 0, stream: TextIO | None = None) -> logging.Logger:
    """Show the ``lossarena`` loggers' messages on stderr at the level ``verbosity`` selects.

    Parameters
    ----------
    verbosity : int
        ``(number of -v) - (number of -q)``: 0 shows warnings and errors, 1 adds info (progress
        notes), 2 adds debug; -1 shows only errors, -2 only critical errors.
    stream : file, optional
        Where to write (default ``sys.stderr`` at call time).

    Returns
    -------
    logging.Logger
        The ``lossarena`` logger. Calling again replaces the handler (no duplicated lines).

    Examples
    --------
    >>> import io, logging
    >>> buf = io.StringIO()
    >>> _ = configure(1, stream=buf)
    >>> logging.getLogger("lossarena.metrics").info("loaded %d metrics", 12)
    >>> buf.getvalue()
    'info: loaded 12 metrics\\n'
    >>> _ = configure(0)
    """
    logger = logging.getLogger(ROOT)
    logger.setLevel(level_for(verbosity))
    for h in [h for h in logger.handlers if h.get_name() == _HANDLER_NAME]:
        logger.removeHandler(h)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(_Formatter())
    logger.addHandler(handler)
    logger.propagate = False
    return logger


class _Formatter(logging.Formatter):
    """``warning: message`` (lower-case level, as the CLIs' ``error: ...`` lines); debug adds the logger."""

    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage()
        if record.exc_info and record.levelno <= logging.DEBUG:
            msg += "\n" + self.formatException(record.exc_info)
        prefix = record.levelname.lower()
        if record.levelno <= logging.DEBUG:
            prefix += f" {record.name}"
        return f"{prefix}: {msg}"
