"""Running the Streamlit app: the exact command line, and a blocking ``serve``."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

from .core.config import load_config
from .core.store import normalise_url
from .ui import ENV_DB_URL, ENV_STUDY_DIR

APP = Path(__file__).with_name("app.py")


def serve_command(study_dir: str | Path, port: int = 8501, address: str = "127.0.0.1") -> list[str]:
    """The ``streamlit run`` argv (the database URL travels in the environment, not in argv)."""
    return [
        sys.executable, "-m", "streamlit", "run", str(APP),
        "--server.port", str(port), "--server.address", address, "--server.headless", "true",
        "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false",
        "--client.showSidebarNavigation", "false", "--client.toolbarMode", "minimal",
        "--", "--study", str(Path(study_dir).resolve()),
    ]


def serve_env(study_dir: str | Path, db_url: str | None = None) -> dict[str, str]:
    cfg = load_config(study_dir)
    env = dict(os.environ)
    env[ENV_STUDY_DIR] = str(Path(study_dir).resolve())
    env[ENV_DB_URL] = normalise_url(db_url or cfg.default_db_url())
    return env


def serve_command_string(study_dir: str | Path, db_url: str | None = None, port: int = 8501) -> str:
    """What ``lossarena study serve`` runs, as one shell line."""
    db = db_url or load_config(study_dir).default_db_url()
    return f"{ENV_DB_URL}={shlex.quote(db)} " + shlex.join(serve_command(study_dir, port))


def start_server(study_dir, db_url=None, port=8501, address="127.0.0.1", **popen_kw) -> subprocess.Popen:
    """Start the app in a child process (non-blocking); the caller stops it."""
    from .core.store import open_store

    env = serve_env(study_dir, db_url)
    open_store(env[ENV_DB_URL]).dispose()  # create the schema once, before any replica serves
    return subprocess.Popen(serve_command(study_dir, port, address), env=env, **popen_kw)


def serve(study_dir, db_url=None, port=8501, address="127.0.0.1") -> int:
    proc = start_server(study_dir, db_url, port, address)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        return proc.wait()
