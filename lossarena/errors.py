"""Exceptions shared by every lossarena tool, and the exit codes the CLI maps them to.

Exit codes (see DESIGN.md): 0 success, 2 bad input (the message names the file, line or field),
3 missing model weights.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_MISSING_WEIGHTS = 3


class LossarenaError(Exception):
    """Base class; ``exit_code`` is what the CLI returns when this escapes a tool."""

    exit_code = 1


class InputError(LossarenaError, ValueError):
    """Bad user input: unreadable or mismatched file, bad row, unknown name. Exit code 2."""

    exit_code = EXIT_BAD_INPUT


class UnknownNameError(InputError, KeyError):
    """An unknown registry name; the message carries a "did you mean" hint."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class UnknownOptionError(InputError, TypeError):
    """An option a metric (or other named component) does not declare; the message carries a
    "did you mean" hint. Also a ``TypeError``, like an unexpected keyword argument in Python."""


class MissingWeightsError(LossarenaError, RuntimeError):
    """Model weights (e.g. an ImageNet backbone) are not on this machine. Exit code 3."""

    exit_code = EXIT_MISSING_WEIGHTS


def did_you_mean(name: str, choices) -> str:
    """A " (did you mean 'x'?)" suffix for the closest of ``choices``, or ""."""
    import difflib

    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return f" (did you mean '{close[0]}'?)" if close else ""
