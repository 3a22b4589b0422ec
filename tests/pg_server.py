"""A throw-away PostgreSQL server for tests and benchmarks (owned by the study-app tests).

``initdb``/``pg_ctl`` come from ``/usr/lib/postgresql/<version>/bin`` (Debian; not on PATH) or PATH.
When we are root they run as the ``postgres`` user (``runuser -u postgres``), in a temporary data
folder owned by that user; the server listens on 127.0.0.1 on a free port with its socket in the
same folder, and starts in well under a second.

Use :func:`pg_server` (pytest fixture, session scope) in tests: it calls ``require_service`` so a
missing PostgreSQL skips locally and fails in CI (``LOSSARENA_REQUIRE_SERVICES=1``).
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest


def _bin_dir() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    cands = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    return Path(cands[-1]).parent if cands else None


def available() -> tuple[bool, str]:
    b = _bin_dir()
    if b is None or not (b / "initdb").exists():
        return False, "PostgreSQL server binaries (initdb, pg_ctl) not found"
    if os.geteuid() == 0:
        try:
            import pwd

            pwd.getpwnam("postgres")
        except KeyError:
            return False, "running as root but there is no 'postgres' user to run the server"
        if shutil.which("runuser") is None:
            return False, "running as root but 'runuser' is missing"
    return True, ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgServer:
    def __init__(self, base: str | Path | None = None, max_connections: int = 400, fsync: bool = True):
        self.bin = _bin_dir()
        self.root = Path(tempfile.mkdtemp(prefix="lossarena-pg-", dir=base))
        self.data = self.root / "data"
        self.port = free_port()
        self.max_connections = max_connections
        self.fsync = fsync
        self.as_root = os.geteuid() == 0
        if self.as_root:
            import pwd

            pw = pwd.getpwnam("postgres")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        os.chmod(self.root, 0o700)

    def _run(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        cmd = list(args)
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=timeout)

    def init(self) -> PgServer:
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
                  "--no-sync", "-E", "UTF8")
        return self

    def start(self) -> PgServer:
        opts = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} "
                f"-c max_connections={self.max_connections} -c fsync={'on' if self.fsync else 'off'}")
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", opts, "-l", str(self.root / "log.txt"),
                  "-w", "-t", "60", "start")
        return self

    def stop(self) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop", check=False)

    def postmaster_pid(self) -> int | None:
        p = self.data / "postmaster.pid"
        try:
            return int(p.read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    def kill9(self) -> None:
        """SIGKILL the postmaster and its backends (a crash; restart runs WAL recovery)."""
        pid = self.postmaster_pid()
        if pid is None:
            return
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
        for p in [pid, *map(int, out.split())]:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                os.kill(pid, 0)
                time.sleep(0.05)
            except ProcessLookupError:
                break

    def url(self, db: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{db}"

    def create_db(self, name: str) -> str:
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server():
    from conftest import require_service

    ok, why = available()
    require_service(ok, why)
    srv = PgServer()
    try:
        srv.init().start()
    except (subprocess.SubprocessError, OSError) as e:
        srv.cleanup()
        require_service(False, f"could not start PostgreSQL: {e}")
    yield srv
    srv.cleanup()


_db_counter = [0]


@pytest.fixture
def pg_url(pg_server):
    """A fresh, empty database on the session's server."""
    _db_counter[0] += 1
    return pg_server.create_db(f"t{os.getpid()}_{_db_counter[0]}")
