"""Running the Streamlit app: the exact command line, and a blocking ``serve``.

Hardening (issue 12, item 4):

* Every security-relevant Streamlit option is pinned on the command line (:data:`PINNED_OPTIONS`),
  which takes precedence over ``.streamlit/config.toml`` in the working directory or the home folder
  and over ``STREAMLIT_*`` environment variables, so no such file can switch them back.
* The database URL (with its password) travels to the child in the environment, never in argv;
  a password comes from ``$LOSSARENA_DB_PASSWORD`` or ``--db-password-file``, and a URL with a
  password on the command line is refused.
* The child runs in its own process group; SIGTERM/SIGINT/SIGHUP to ``lossarena study serve`` stop
  the whole group (Streamlit and anything it started), then ``serve`` returns.
"""

from __future__ import annotations

import os
import secrets
import shlex
import signal
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

from lossarena.errors import InputError

from .core.config import load_config
from .core.store import normalise_url
from .ui_env import ENV_DB_URL, ENV_STUDY_DIR

APP = Path(__file__).with_name("app.py")
ENV_DB_PASSWORD = "LOSSARENA_DB_PASSWORD"

# option -> value; pinned on the command line (highest precedence in Streamlit's config resolution)
PINNED_OPTIONS: dict[str, str] = {
    "client.showErrorDetails": "none",  # no tracebacks/paths to participants (errors get an id instead)
    "client.toolbarMode": "minimal",
    "client.showSidebarNavigation": "false",
    "server.enableXsrfProtection": "true",
    # Streamlit's "enableCORS = true" *is* the protection: cross-origin requests are refused
    # (cross-origin resource sharing off). "false" would open the server to every origin.
    "server.enableCORS": "true",
    "server.enableAgentApi": "false",  # the agent/automation HTTP API (Streamlit >= 1.6x)
    "server.enableStaticServing": "false",
    "server.fileWatcherType": "none",
    "server.runOnSave": "false",
    "server.allowRunOnSave": "false",
    "server.headless": "true",
    "server.scriptHealthCheckEnabled": "false",
    "server.maxUploadSize": "1",
    "server.baseUrlPath": "",
    "global.developmentMode": "false",
    "browser.gatherUsageStats": "false",
}


def _known_options() -> set[str]:
    from streamlit import config

    return set(config._config_options_template)


def serve_command(study_dir: str | Path, port: int = 8501, address: str = "127.0.0.1") -> list[str]:
    """The ``streamlit run`` argv (the database URL travels in the environment, not in argv)."""
    known = _known_options()
    pinned: list[str] = []
    for k, v in PINNED_OPTIONS.items():
        if k in known:  # options this Streamlit version does not have are not passed (it would refuse them)
            pinned += [f"--{k}", v]
    return [
        sys.executable, "-m", "streamlit", "run", str(APP),
        "--server.port", str(port), "--server.address", address, *pinned,
        "--", "--study", str(Path(study_dir).resolve()),
    ]


def db_url_with_password(db_url: str, password_file: str | None = None) -> str:
    """``db_url`` with the password from ``password_file`` or ``$LOSSARENA_DB_PASSWORD`` inserted.
    A password already in the URL (visible in ``ps``) is refused."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    if db_url.startswith("sqlite"):
        return db_url
    try:
        u = make_url(normalise_url(db_url))
    except (ArgumentError, ValueError) as e:
        raise InputError(f"--db: not a database URL ({type(e).__name__})") from None
    if u.password:
        raise InputError("--db: the URL contains a password, which would be visible to every user in `ps`; "
                         f"put it in ${ENV_DB_PASSWORD} or a file given with --db-password-file")
    pw = None
    if password_file:
        try:
            text = Path(password_file).read_text()
        except OSError as e:
            raise InputError(f"{password_file}: cannot read the database password ({e.strerror})") from None
        pw = text.splitlines()[0] if text.strip() else ""
        if not pw:
            raise InputError(f"{password_file}: the password file is empty")
    elif os.environ.get(ENV_DB_PASSWORD):
        pw = os.environ[ENV_DB_PASSWORD]
    if pw is None:
        return db_url
    user = quote(u.username or "", safe="")
    host = u.host or ""
    port = f":{u.port}" if u.port else ""
    query = ("?" + "&".join(f"{k}={v}" for k, v in u.query.items())) if u.query else ""
    return f"{u.drivername}://{user}:{quote(pw, safe='')}@{host}{port}/{u.database or ''}{query}"


def serve_env(study_dir: str | Path, db_url: str | None = None) -> dict[str, str]:
    cfg = load_config(study_dir)
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMLIT_")}
    env[ENV_STUDY_DIR] = str(Path(study_dir).resolve())
    env[ENV_DB_URL] = normalise_url(db_url or cfg.default_db_url())
    # the XSRF cookie signing key: fresh per start, in the environment (not in argv, not in a file)
    env["STREAMLIT_SERVER_COOKIE_SECRET"] = secrets.token_urlsafe(32)
    return env


def serve_command_string(study_dir: str | Path, db_url: str | None = None, port: int = 8501,
                         redact: bool = True) -> str:
    """What ``lossarena study serve`` runs, as one shell line (a database password shown as ***)."""
    db = db_url or load_config(study_dir).default_db_url()
    if redact and not db.startswith("sqlite"):
        from sqlalchemy.engine import make_url

        db = make_url(db).render_as_string(hide_password=True)
    return f"{ENV_DB_URL}={shlex.quote(db)} " + shlex.join(serve_command(study_dir, port))


def start_server(study_dir, db_url=None, port=8501, address="127.0.0.1", **popen_kw) -> subprocess.Popen:
    """Start the app in a child process in its own process group (non-blocking); stop it with
    :func:`stop_server`."""
    from .core.store import open_store

    env = serve_env(study_dir, db_url)
    open_store(env[ENV_DB_URL]).dispose()  # create the schema once, before any replica serves
    popen_kw.setdefault("start_new_session", True)
    return subprocess.Popen(serve_command(study_dir, port, address), env=env, **popen_kw)


def stop_server(proc: subprocess.Popen, timeout: float = 10.0) -> int:
    """SIGTERM to the child's process group, SIGKILL after ``timeout`` s; returns the exit status."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            return proc.wait(wait)
        except subprocess.TimeoutExpired:
            continue
    return proc.wait()


def serve(study_dir, db_url=None, port=8501, address="127.0.0.1") -> int:
    """Run the app until it exits or this process gets SIGTERM/SIGINT/SIGHUP (then the server's whole
    process group is stopped: SIGTERM, SIGKILL after 10 s); returns 0 after a signal, else the app's
    exit status."""
    import time

    proc = start_server(study_dir, db_url, port, address)
    stopping: dict = {"at": None}

    def _stop(signum, _frame):  # only signal here; the loop below waits (no waiting inside a handler)
        if stopping["at"] is None:
            stopping["at"] = time.monotonic()
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass

    old = {s: signal.signal(s, _stop) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    try:
        while True:
            try:
                rc = proc.wait(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                if stopping["at"] is not None and time.monotonic() - stopping["at"] > 10:
                    try:
                        os.killpg(proc.pid, signal.SIGKILL)
                    except (ProcessLookupError, PermissionError):
                        pass
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        if proc.poll() is None:
            stop_server(proc)
        try:  # anything the server started in its group
            os.killpg(proc.pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass
    return 0 if stopping["at"] is not None else rc
