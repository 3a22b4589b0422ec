"""Vote stores behind SQLAlchemy 2: SQLite (WAL, the embedded default) and PostgreSQL (psycopg 3).

One registry, :data:`STORES`, keyed by URL scheme; :func:`open_store` picks the class. URLs:
``sqlite:///path/votes.sqlite``, ``postgresql+psycopg://user@host:port/db`` (plain ``postgresql://``
and ``postgres://`` are mapped to the psycopg 3 driver).

Tables (all rows carry ``study_id``, so several studies can share a database):

``study_participants``  one row per participant: session, stage, display check, training progress.
``study_assignments``   every pair issued to a participant, in order (``seq``); unique per
                        (participant, kind, content, group, unordered pair) -> a participant is never
                        shown the same pair twice, even with two tabs or two app replicas.
``study_votes``         one row per answered assignment; primary key (study, participant, seq) and
                        the same unique pair constraint -> a duplicate vote is impossible. A vote is
                        committed (``record_vote`` returns) before the next pair is issued.

SQLite: WAL journal, ``synchronous=NORMAL`` (a committed vote survives a crash of the app process;
only an OS crash/power loss may drop the last transactions), write transactions open with
``BEGIN IMMEDIATE`` so concurrent writers queue on the busy timeout instead of failing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import (
    JSON,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    create_engine,
    event,
    func,
    literal,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

from lossarena.errors import InputError
from lossarena.registry import Registry

metadata = MetaData()

participants = Table(
    "study_participants",
    metadata,
    Column("study_id", String(64), nullable=False),
    Column("participant", String(64), nullable=False),
    Column("session_no", Integer, nullable=False),
    Column("stage", String(16), nullable=False),
    Column("platform", String(16)),
    Column("meta", JSON),
    Column("display", JSON),
    Column("refusal", Text),
    Column("training_index", Integer, nullable=False, default=0),
    Column("training_correct", Integer, nullable=False, default=0),
    Column("training_attempt", Integer, nullable=False, default=0),  # 0 = first try, 1 = the retry
    Column("display_attempts", Integer, nullable=False, default=0),
    Column("reloads", Integer, nullable=False, default=0),  # page loads of the trials after the first
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("completed_at", Float),
    PrimaryKeyConstraint("study_id", "participant", name="pk_participants"),
)

assignments = Table(
    "study_assignments",
    metadata,
    Column("study_id", String(64), nullable=False),
    Column("participant", String(64), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("kind", String(8), nullable=False),  # trial | trap
    Column("content", String(200), nullable=False),
    Column("grp", String(64), nullable=False),
    Column("cond_left", String(200), nullable=False),
    Column("cond_right", String(200), nullable=False),
    Column("pair_key", String(401), nullable=False),
    Column("issued_at", Float, nullable=False),
    PrimaryKeyConstraint("study_id", "participant", "seq", name="pk_assignments"),
    UniqueConstraint("study_id", "participant", "kind", "content", "grp", "pair_key", name="uq_assign_pair"),
)

votes = Table(
    "study_votes",
    metadata,
    Column("study_id", String(64), nullable=False),
    Column("participant", String(64), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("kind", String(8), nullable=False),
    Column("content", String(200), nullable=False),
    Column("grp", String(64), nullable=False),
    Column("condition_a", String(200), nullable=False),  # shown on the left
    Column("condition_b", String(200), nullable=False),  # shown on the right
    Column("pair_key", String(401), nullable=False),
    Column("winner", String(200), nullable=False),  # a condition name or "tie"
    Column("response_time_ms", Integer),  # client-measured: both images painted -> answer
    Column("server_time_ms", Float),  # server-measured: pair issued -> vote committed (incl. delivery)
    Column("client", JSON),  # window/screen size, dpr, reloads, toggles at the answer
    Column("timestamp", Float, nullable=False),
    PrimaryKeyConstraint("study_id", "participant", "seq", name="pk_votes"),
    UniqueConstraint("study_id", "participant", "kind", "content", "grp", "pair_key", name="uq_vote_pair"),
    Index("ix_votes_group", "study_id", "kind", "content", "grp"),
)

events = Table(
    "study_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("study_id", String(64), nullable=False),
    Column("participant", String(64)),
    Column("kind", String(32), nullable=False),  # display_attempt | training_attempt | error | ...
    Column("data", JSON),
    Column("at", Float, nullable=False),
    Index("ix_events_study", "study_id", "kind"),
)

STAGES = ("consent", "display", "training", "trials", "done", "refused")


@dataclass
class VoteResult:
    status: str  # "new" (committed now) or "duplicate" (this assignment already had a vote)
    winner: str
    latency_ms: float


def normalise_url(url: str) -> str:
    """Map ``postgresql://`` / ``postgres://`` to the psycopg 3 driver; check the scheme."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    scheme = url.split(":", 1)[0]
    if scheme not in STORES:
        raise InputError(f"--db {url.split('@')[-1]!r}: unsupported database URL scheme {scheme!r} "
                         f"(use sqlite:///FILE or postgresql://USER@HOST:PORT/DB)")
    return url


class SqlStore:
    """Common SQL code; subclasses set up the engine for their database."""

    def __init__(self, url: str, pool_size: int = 10, max_overflow: int = 40):
        self.url = url
        self.engine = self._make_engine(url, pool_size, max_overflow)
        self.write_engine = self.engine
        self._schema_lock = threading.Lock()
        self._schema_ready = False

    # ---- engine / transactions
    def _make_engine(self, url, pool_size, max_overflow) -> Engine:
        return create_engine(url, pool_size=pool_size, max_overflow=max_overflow, pool_pre_ping=True)

    @contextmanager
    def write(self) -> Iterator[Connection]:
        with self.write_engine.begin() as conn:
            yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            yield conn

    def create_schema(self) -> None:
        with self._schema_lock:
            if self._schema_ready:
                return
            for attempt in range(5):
                try:
                    metadata.create_all(self.write_engine)
                    break
                except (IntegrityError, ProgrammingError, OperationalError):  # a replica created it concurrently
                    if attempt == 4:
                        raise
                    time.sleep(0.2 * (attempt + 1))
            self._schema_ready = True

    def dispose(self) -> None:
        self.engine.dispose()
        if self.write_engine is not self.engine:
            self.write_engine.dispose()

    # ---- participants
    def get_participant(self, study_id: str, pid: str) -> dict | None:
        with self.read() as c:
            r = c.execute(select(participants).where(
                participants.c.study_id == study_id, participants.c.participant == pid)).mappings().first()
        return dict(r) if r else None

    def session_counts(self, study_id: str) -> dict[int, int]:
        with self.read() as c:
            rows = c.execute(
                select(participants.c.session_no, func.count())
                .where(participants.c.study_id == study_id, participants.c.stage != "refused")
                .group_by(participants.c.session_no)
            ).all()
        return {int(s): int(n) for s, n in rows}

    def create_participant(self, study_id: str, pid: str, session_no: int, platform: str | None,
                           meta: dict | None) -> dict:
        now = time.time()
        try:
            with self.write() as c:
                c.execute(participants.insert().values(
                    study_id=study_id, participant=pid, session_no=session_no, stage="consent",
                    platform=platform, meta=meta or {}, training_index=0, training_correct=0,
                    created_at=now, updated_at=now))
        except IntegrityError:
            pass  # created concurrently (second tab, second replica): use that row
        p = self.get_participant(study_id, pid)
        assert p is not None
        return p

    def advance_stage(self, study_id: str, pid: str, from_stage: str, to_stage: str, **fields) -> bool:
        """Conditional update: only moves on when the participant is still at ``from_stage``."""
        with self.write() as c:
            res = c.execute(update(participants).where(
                participants.c.study_id == study_id, participants.c.participant == pid,
                participants.c.stage == from_stage).values(stage=to_stage, updated_at=time.time(), **fields))
        return res.rowcount == 1

    def record_training(self, study_id: str, pid: str, index: int, correct: bool) -> bool:
        """Counts the answer to practice pair ``index`` once (conditional on the current index)."""
        with self.write() as c:
            res = c.execute(update(participants).where(
                participants.c.study_id == study_id, participants.c.participant == pid,
                participants.c.stage == "training", participants.c.training_index == index).values(
                training_index=index + 1,
                training_correct=participants.c.training_correct + (1 if correct else 0),
                updated_at=time.time()))
        return res.rowcount == 1

    def restart_training(self, study_id: str, pid: str, attempt: int) -> bool:
        """Start training attempt ``attempt + 1`` from the first pair (conditional on ``attempt``)."""
        with self.write() as c:
            res = c.execute(update(participants).where(
                participants.c.study_id == study_id, participants.c.participant == pid,
                participants.c.stage == "training", participants.c.training_attempt == attempt).values(
                training_attempt=attempt + 1, training_index=0, training_correct=0, updated_at=time.time()))
        return res.rowcount == 1

    def update_participant(self, study_id: str, pid: str, **fields) -> None:
        with self.write() as c:
            c.execute(update(participants).where(
                participants.c.study_id == study_id, participants.c.participant == pid).values(
                updated_at=time.time(), **fields))

    def bump_reloads(self, study_id: str, pid: str) -> None:
        self.update_participant(study_id, pid, reloads=participants.c.reloads + 1)

    # ---- event log (display attempts, training attempts, participant-facing errors)
    def log_event(self, study_id: str, pid: str | None, kind: str, data: dict | None = None) -> None:
        with self.write() as c:
            c.execute(events.insert().values(study_id=study_id, participant=pid, kind=kind[:32], data=data or {},
                                             at=time.time()))

    def list_events(self, study_id: str, pid: str | None = None, kind: str | None = None) -> list[dict]:
        q = select(events).where(events.c.study_id == study_id)
        if pid is not None:
            q = q.where(events.c.participant == pid)
        if kind is not None:
            q = q.where(events.c.kind == kind)
        with self.read() as c:
            return [dict(r) for r in c.execute(q.order_by(events.c.id)).mappings().all()]

    def list_participants(self, study_id: str) -> list[dict]:
        with self.read() as c:
            rows = c.execute(select(participants).where(participants.c.study_id == study_id)
                             .order_by(participants.c.created_at)).mappings().all()
        return [dict(r) for r in rows]

    # ---- assignments
    def open_assignment(self, study_id: str, pid: str) -> dict | None:
        """The participant's lowest-seq assignment without a vote (what a reload shows again)."""
        j = assignments.outerjoin(votes, and_(
            votes.c.study_id == assignments.c.study_id, votes.c.participant == assignments.c.participant,
            votes.c.seq == assignments.c.seq))
        with self.read() as c:
            r = c.execute(select(assignments).select_from(j).where(
                assignments.c.study_id == study_id, assignments.c.participant == pid, votes.c.seq.is_(None))
                .order_by(assignments.c.seq).limit(1)).mappings().first()
        return dict(r) if r else None

    def open_assignments(self, study_id: str, pid: str, limit: int = 2) -> list[dict]:
        """The participant's ``limit`` lowest-seq assignments without a vote (current and prefetched)."""
        j = assignments.outerjoin(votes, and_(
            votes.c.study_id == assignments.c.study_id, votes.c.participant == assignments.c.participant,
            votes.c.seq == assignments.c.seq))
        with self.read() as c:
            rows = c.execute(select(assignments).select_from(j).where(
                assignments.c.study_id == study_id, assignments.c.participant == pid, votes.c.seq.is_(None))
                .order_by(assignments.c.seq).limit(limit)).mappings().all()
        return [dict(r) for r in rows]

    def participant_assignments(self, study_id: str, pid: str) -> list[dict]:
        with self.read() as c:
            rows = c.execute(select(assignments).where(
                assignments.c.study_id == study_id, assignments.c.participant == pid)
                .order_by(assignments.c.seq)).mappings().all()
        return [dict(r) for r in rows]

    def create_assignment(self, row: dict) -> bool:
        """Insert; False when the seq or the pair was taken concurrently (caller re-reads)."""
        try:
            with self.write() as c:
                c.execute(assignments.insert().values(**row))
            return True
        except IntegrityError:
            return False

    # ---- votes
    def record_vote(self, study_id: str, pid: str, seq: int, side: str, response_time_ms: int | None,
                    client: dict | None = None) -> VoteResult:
        """Commit the answer to assignment ``seq`` (``side`` = left | right | tie). Idempotent: a
        second answer to the same assignment returns status "duplicate" and changes nothing.

        One statement, one transaction: ``INSERT INTO votes SELECT ... FROM assignments WHERE ...
        RETURNING winner`` (the vote is copied from the issued pair, so a client cannot vote on a
        pair it was not shown)."""
        if side not in ("left", "right", "tie"):
            raise InputError(f"vote side {side!r}: expected left, right or tie")
        a = assignments.c
        winner = {"left": a.cond_left, "right": a.cond_right, "tie": literal("tie", String)}[side]
        now = time.time()
        sel = select(a.study_id, a.participant, a.seq, a.kind, a.content, a.grp, a.cond_left, a.cond_right,
                     a.pair_key, winner, literal(response_time_ms, Integer),
                     (literal(now, Float) - a.issued_at) * 1000.0, literal(client, JSON), literal(now, Float)).where(
            a.study_id == study_id, a.participant == pid, a.seq == seq)
        ins = votes.insert().from_select(
            ["study_id", "participant", "seq", "kind", "content", "grp", "condition_a", "condition_b", "pair_key",
             "winner", "response_time_ms", "server_time_ms", "client", "timestamp"], sel).returning(votes.c.winner)
        t0 = time.perf_counter()
        try:
            with self.write() as c:
                got = c.execute(ins).scalar_one_or_none()
            status = "new"
        except IntegrityError:
            got, status = None, "duplicate"
        latency = (time.perf_counter() - t0) * 1000.0
        if status == "duplicate":
            with self.read() as c:
                got = c.execute(select(votes.c.winner).where(
                    votes.c.study_id == study_id, votes.c.participant == pid, votes.c.seq == seq)).scalar_one()
        elif got is None:
            raise InputError(f"participant {pid}: no pair number {seq} was issued")
        return VoteResult(status, got, latency)

    def participant_votes(self, study_id: str, pid: str) -> list[dict]:
        with self.read() as c:
            rows = c.execute(select(votes).where(votes.c.study_id == study_id, votes.c.participant == pid)
                             .order_by(votes.c.seq)).mappings().all()
        return [dict(r) for r in rows]

    def group_tallies(self, study_id: str, contents: list[str] | None = None) -> list[tuple]:
        """(content, grp, condition_a, condition_b, winner, count) over all trial votes."""
        q = (select(votes.c.content, votes.c.grp, votes.c.condition_a, votes.c.condition_b, votes.c.winner,
                    func.count())
             .where(votes.c.study_id == study_id, votes.c.kind == "trial")
             .group_by(votes.c.content, votes.c.grp, votes.c.condition_a, votes.c.condition_b, votes.c.winner))
        if contents is not None:
            q = q.where(votes.c.content.in_(contents))
        with self.read() as c:
            return [tuple(r) for r in c.execute(q).all()]

    def all_votes(self, study_id: str, kind: str | None = "trial") -> list[dict]:
        q = select(votes).where(votes.c.study_id == study_id)
        if kind is not None:
            q = q.where(votes.c.kind == kind)
        with self.read() as c:
            rows = c.execute(q.order_by(votes.c.timestamp, votes.c.participant, votes.c.seq)).mappings().all()
        return [dict(r) for r in rows]

    def count_votes(self, study_id: str) -> int:
        with self.read() as c:
            return int(c.execute(select(func.count()).select_from(votes)
                                 .where(votes.c.study_id == study_id)).scalar_one())


STORES: Registry[type[SqlStore]] = Registry("vote store")


def _private_file(path: str) -> None:
    """Create the database file owner-only (0600) before SQLite opens it; SQLite gives its -wal and
    -shm files the permissions of the database file. An existing file is tightened to 0600."""
    import os

    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as e:
        raise InputError(f"--db {path}: cannot create the database file ({e.strerror})") from None
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


@STORES.register("sqlite")
class SQLiteStore(SqlStore):
    """SQLite file in WAL mode; reads on deferred transactions, writes on ``BEGIN IMMEDIATE``."""

    def _make_engine(self, url, pool_size, max_overflow):
        u = make_url(url)
        if u.database in (None, "", ":memory:"):
            raise InputError(f"--db {url}: an in-memory SQLite database cannot be shared; give a file path")
        _private_file(u.database)
        return self._sqlite_engine(url, pool_size, max_overflow, immediate=False)

    def __init__(self, url: str, pool_size: int = 10, max_overflow: int = 40):
        super().__init__(url, pool_size, max_overflow)
        self.write_engine = self._sqlite_engine(url, 1, 0, immediate=True)

    @staticmethod
    def _sqlite_engine(url, pool_size, max_overflow, immediate: bool) -> Engine:
        eng = create_engine(url, pool_size=pool_size, max_overflow=max_overflow, pool_timeout=120,
                            connect_args={"timeout": 60, "check_same_thread": False})

        @event.listens_for(eng, "connect")
        def _on_connect(dbapi_conn, _rec):
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=60000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @event.listens_for(eng, "begin")
        def _on_begin(conn):
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return eng


@STORES.register("postgresql+psycopg", aliases=("postgresql", "postgres"))
class PostgresStore(SqlStore):
    """PostgreSQL through psycopg 3 (read committed; the unique constraints do the arbitration)."""


def open_store(url: str, create: bool = True, **kw) -> SqlStore:
    url = normalise_url(url)
    cls = STORES.get(url.split(":", 1)[0])
    store = cls(url, **kw)
    if create:
        store.create_schema()
    return store
