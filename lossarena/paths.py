"""The one place that knows where the project's shared data lives.

``../shared/data`` beside the repository (``LOSSARENA_SHARED_DATA`` overrides it). Every test,
benchmark and the demo read shared files through :func:`shared_data`; tests use
:func:`require_shared`, which skips with a reason when the folder is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def shared_data_root() -> Path:
    env = os.environ.get("LOSSARENA_SHARED_DATA")
    if env:
        return Path(env)
    return REPO_ROOT.parent / "shared" / "data"


def shared_data(*parts: str) -> Path | None:
    """Path to ``shared/data/<parts>`` if it exists, else None."""
    p = shared_data_root().joinpath(*parts)
    return p if p.exists() else None


def require_shared(*parts: str) -> Path:
    """For tests: the path, or ``pytest.skip`` naming what is missing."""
    p = shared_data(*parts)
    if p is None:
        import pytest

        pytest.skip(f"shared data not available: {shared_data_root().joinpath(*parts)} (see DESIGN.md)")
    return p
