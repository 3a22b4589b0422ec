"""Imports every built-in metric module; each registers its specs on import."""

from . import basic  # noqa: F401
from . import deep  # noqa: F401
