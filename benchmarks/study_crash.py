"""Crash test of the study app's vote path: kill -9 in the middle of a load run, restart, check
that every acknowledged vote is in the database.

For each backend a simulation process (``lossarena study simulate``, the app's core code path: the
"server") runs N participants; it appends ``participant,seq,status,winner`` to an ack log with one
``write(2)`` right after each vote's commit returned. When about a third of the expected votes are
acknowledged the process is killed with SIGKILL; for PostgreSQL the database server is also killed
with SIGKILL (postmaster and backends) and restarted (WAL crash recovery). Then the same simulation
is started again (same seed: the same participants resume where the store says they are) and runs
to the end. Checks: every acknowledged vote present with the acknowledged answer (lost = 0), no pair
twice per participant (duplicated = 0), every participant finished with the planned number of votes.

    python benchmarks/study_crash.py --participants 200 --concurrency 200
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from study_load import ROOT, build, check_integrity, machine, read_acks

sys.path.insert(0, str(ROOT / "tests"))


def crash_run(study: Path, backend: str, work: Path, participants: int, concurrency: int, think_ms: float,
              seed: int, expected_per_participant: int, kill_fraction: float = 0.33) -> dict:
    srv = None
    if backend == "sqlite":
        db = f"sqlite:///{work / f'crash-{time.time_ns()}.sqlite'}"
    else:
        from pg_server import PgServer

        srv = PgServer(max_connections=500, fsync=True).init().start()
        db = srv.create_db("crash")
    ack = work / f"crash-ack-{backend}.csv"
    ack.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "lossarena", "study", "simulate", str(study), "--db", db, "--participants",
           str(participants), "--concurrency", str(concurrency), "--seed", str(seed), "--think-ms", str(think_ms),
           "--ack-log", str(ack), "--json"]
    try:
        from lossarena.study_app.core.store import open_store

        open_store(db).dispose()
        expected = participants * expected_per_participant
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        target = int(kill_fraction * expected)
        deadline = time.time() + 900
        while time.time() < deadline and p.poll() is None:
            n = sum(1 for _ in open(ack)) if ack.exists() else 0
            if n >= target:
                break
            time.sleep(0.05)
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        acked_at_crash = len(read_acks([ack]))
        if srv is not None:
            srv.kill9()
            t = time.perf_counter()
            srv.start()
            restart_s = time.perf_counter() - t
        else:
            restart_s = 0.0
        mid = check_integrity(study, db, read_acks([ack]))
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
        acks = read_acks([ack])
        final = check_integrity(study, db, acks)
        return {
            "backend": backend, "participants": participants, "concurrency": concurrency,
            "killed_server_too": srv is not None, "acked_before_kill": acked_at_crash,
            "votes_in_db_after_kill": mid["votes_in_db"], "lost_after_kill": mid["lost"],
            "db_restart_s": round(restart_s, 2), "resume_rc": r.returncode, "expected_votes": expected, **final,
        }
    finally:
        if srv is not None:
            srv.cleanup()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--participants", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=200)
    ap.add_argument("--think-ms", type=float, default=300.0)
    ap.add_argument("--trials", type=int, default=6)
    ap.add_argument("--traps", type=int, default=1)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"])
    ap.add_argument("--workdir")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "RESULTS_study.md"))
    args = ap.parse_args(argv)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="lossarena-crash-"))
    work.mkdir(parents=True, exist_ok=True)
    study = build(work, args.trials, args.traps)
    info = machine()
    rows = []
    for b in args.backends:
        r = crash_run(study, b, work, args.participants, args.concurrency, args.think_ms, args.seed,
                      args.trials + args.traps)
        print(json.dumps(r), flush=True)
        rows.append(r)
    cols = ["backend", "participants", "concurrency", "killed_server_too", "acked_before_kill",
            "votes_in_db_after_kill", "lost_after_kill", "db_restart_s", "expected_votes", "votes_in_db",
            "acknowledged_new", "lost", "duplicated_pairs", "participants_done"]
    md = [f"### Crash: kill -9 mid-run, restart ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})", "",
          "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    md += ["| " + " | ".join(str(r.get(c, "")) for c in cols) + " |" for r in rows]
    md = "\n".join(md) + f"\n\nMachine: {info}. Command: `python benchmarks/study_crash.py {' '.join(argv or sys.argv[1:])}`\n\n"
    if args.out:
        with open(args.out, "a") as f:
            f.write(md)
    print(md)
    ok = all(r["lost"] == 0 and r["lost_after_kill"] == 0 and r["duplicated_pairs"] == 0
             and r["votes_in_db"] == r["expected_votes"] for r in rows)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
