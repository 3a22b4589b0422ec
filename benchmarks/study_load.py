"""Load benchmark of the study app's vote path: N concurrent simulated participants against SQLite
and PostgreSQL.

Every participant runs the app's core code path (join, consent, display, training, then pairs from
the sampler and a vote committed per pair) with an exponential think time between answers. The
population is split over ``--processes`` worker processes (like several app replicas), each with one
thread per participant. Measured: vote-commit latency (``record_vote``: from the call until the
transaction is committed) p50/p99/max, throughput (committed votes per second of the simulation's wall
time, process start-up excluded), and the
integrity checks: every acknowledged vote is in the database with the acknowledged answer (lost = 0),
no participant has the same pair twice (duplicates = 0), the number of rows equals the number of
acknowledged new votes.

    python benchmarks/study_load.py --participants 200 --processes 4 --think-ms 1000

Results are appended to benchmarks/RESULTS_study.md (``--out``).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # pg_server helper


def build(work: Path, trials: int, traps: int) -> Path:
    from lossarena.study_app.core.build import build_study
    from lossarena.study_app.core.stimuli import make_synthetic_stimuli

    stim = work / "stimuli"
    if not (stim / "manifest.csv").exists():
        make_synthetic_stimuli(stim, contents=3, target_bpps=(0.4, 1.0), max_side=384)
    study = work / "study"
    build_study(stim, study, crop=(320, 256), sessions=3, trials_per_participant=trials,
                traps_per_participant=traps, force=True, progress=False)
    return study


def start_backend(name: str, work: Path):
    """(db url, server or None)."""
    if name == "sqlite":
        db = work / f"load-{time.time_ns()}.sqlite"
        return f"sqlite:///{db}", None
    from pg_server import PgServer, available

    ok, why = available()
    if not ok:
        raise SystemExit(f"PostgreSQL not available: {why}")
    srv = PgServer(max_connections=500, fsync=True).init().start()
    return srv.create_db("load"), srv


def sim_cmd(study, db, n, first, concurrency, seed, think_ms, ack, lat) -> list[str]:
    return [sys.executable, "-m", "lossarena", "study", "simulate", str(study), "--db", db,
            "--participants", str(n), "--first", str(first), "--concurrency", str(concurrency),
            "--seed", str(seed), "--think-ms", str(think_ms), "--ack-log", str(ack), "--latency-log", str(lat),
            "--json"]


def read_acks(paths) -> list[tuple[str, int, str, str]]:
    out = []
    for p in paths:
        if Path(p).exists():
            for line in Path(p).read_text().splitlines():
                parts = line.split(",")
                if len(parts) == 4:  # a line cut by kill -9 has fewer fields; it was never acknowledged
                    out.append((parts[0], int(parts[1]), parts[2], parts[3]))
    return out


def check_integrity(study: Path, db: str, acks) -> dict:
    from lossarena.study_app.core.config import load_config
    from lossarena.study_app.core.store import open_store

    cfg = load_config(study)
    st = open_store(db)
    votes = st.all_votes(cfg.study_id, kind=None)
    parts = st.list_participants(cfg.study_id)
    st.dispose()
    by_key = {(v["participant"], v["seq"]): v["winner"] for v in votes}
    lost = sum(1 for pid, seq, _s, w in acks if by_key.get((pid, seq)) != w)
    pairs = Counter((v["participant"], v["kind"], v["content"], v["grp"], v["pair_key"]) for v in votes)
    return {
        "votes_in_db": len(votes),
        "acknowledged_new": sum(1 for a in acks if a[2] == "new"),
        "acknowledged_total": len(acks),
        "lost": lost,
        "duplicated_pairs": sum(n - 1 for n in pairs.values() if n > 1),
        "participants_done": sum(p["stage"] == "done" for p in parts),
        "participants": len(parts),
    }


def run_load(study: Path, backend: str, work: Path, participants: int, processes: int, think_ms: float,
             seed: int) -> dict:
    db, srv = start_backend(backend, work)
    try:
        from lossarena.study_app.core.store import open_store

        open_store(db).dispose()  # schema once, as `serve` does before replicas start
        per = [participants // processes + (1 if i < participants % processes else 0) for i in range(processes)]
        firsts = np.cumsum([0] + per[:-1])
        acks = [work / f"ack-{backend}-{i}.csv" for i in range(processes)]
        lats = [work / f"lat-{backend}-{i}.txt" for i in range(processes)]
        for p in acks + lats:
            p.unlink(missing_ok=True)
        t0 = time.perf_counter()
        procs = [subprocess.Popen(sim_cmd(study, db, n, int(f), n, seed, think_ms, a, lt), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
                 for n, f, a, lt in zip(per, firsts, acks, lats)]
        outs = [p.communicate() for p in procs]
        wall = time.perf_counter() - t0
        errors = [e[-500:] for p, (_o, e) in zip(procs, outs) if p.returncode != 0]
        lat = np.concatenate([np.loadtxt(p, ndmin=1) for p in lats if p.exists() and p.stat().st_size])
        integ = check_integrity(study, db, read_acks(acks))
        sim_wall = max((json.loads(o.strip().splitlines()[-1])["wall_s"] for o, _e in outs if o.strip()), default=wall)
        return {
            "backend": backend, "participants": participants, "processes": processes, "think_ms": think_ms,
            "commit_p50_ms": round(float(np.percentile(lat, 50)), 2),
            "commit_p99_ms": round(float(np.percentile(lat, 99)), 2),
            "commit_max_ms": round(float(lat.max()), 2),
            "throughput_votes_per_s": round(integ["votes_in_db"] / sim_wall, 1),
            "wall_s": round(sim_wall, 1), "errors": errors, **integ,
        }
    finally:
        if srv is not None:
            srv.cleanup()


def run_store_only(study: Path, backend: str, work: Path, participants: int, votes_each: int, think_ms: float,
                   seed: int) -> dict:
    """The store alone under the same concurrency: one thread per participant issues a pair and
    commits a vote ``votes_each`` times (think time between), no sampler or page logic. Isolates the
    database commit latency from the app's CPU work (which, on a small shared machine, dominates)."""
    import threading

    from lossarena.study_app.core.config import load_config
    from lossarena.study_app.core.store import open_store

    cfg = load_config(study)
    db, srv = start_backend(backend, work)
    try:
        st = open_store(db, pool_size=50, max_overflow=participants)
        lat: list[float] = []
        lock = threading.Lock()
        rng_master = np.random.default_rng(seed)
        seeds = rng_master.integers(0, 2**31, participants)

        def worker(i: int) -> None:
            rng = np.random.default_rng(int(seeds[i]))
            pid = f"S{i:04d}"
            st.create_participant(cfg.study_id, pid, 0, "bench", {})
            for k in range(votes_each):
                time.sleep(float(rng.exponential(think_ms / 1000.0)))
                st.create_assignment(dict(study_id=cfg.study_id, participant=pid, seq=k, kind="trial", content="c",
                                          grp="g", cond_left=f"a{k}", cond_right=f"b{k}", pair_key=f"a{k}|b{k}",
                                          issued_at=time.time()))
                r = st.record_vote(cfg.study_id, pid, k, "left" if rng.random() < 0.5 else "right", 1000)
                with lock:
                    lat.append(r.latency_ms)

        t0 = time.perf_counter()
        ths = [threading.Thread(target=worker, args=(i,)) for i in range(participants)]
        for t in ths:
            t.start()
        for t in ths:
            t.join()
        wall = time.perf_counter() - t0
        n = st.count_votes(cfg.study_id)
        st.dispose()
        a = np.asarray(lat)
        return {"backend": backend + " (store only)", "participants": participants, "processes": 1,
                "think_ms": think_ms, "commit_p50_ms": round(float(np.percentile(a, 50)), 2),
                "commit_p99_ms": round(float(np.percentile(a, 99)), 2), "commit_max_ms": round(float(a.max()), 2),
                "throughput_votes_per_s": round(n / wall, 1), "wall_s": round(wall, 1), "votes_in_db": n,
                "acknowledged_new": len(lat), "lost": len(lat) - n, "duplicated_pairs": 0,
                "participants_done": participants, "errors": []}
    finally:
        if srv is not None:
            srv.cleanup()


def markdown(rows: list[dict], title: str) -> str:
    cols = ["backend", "participants", "processes", "think_ms", "commit_p50_ms", "commit_p99_ms", "commit_max_ms",
            "throughput_votes_per_s", "wall_s", "votes_in_db", "acknowledged_new", "lost", "duplicated_pairs",
            "participants_done"]
    lines = [f"### {title}", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(str(r.get(c, "")) for c in cols) + " |")
    return "\n".join(lines) + "\n"


def machine() -> str:
    import os

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{platform.platform()}, {os.cpu_count()} CPUs, load average {load:.1f} at start, Python {platform.python_version()}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--participants", type=int, default=200)
    ap.add_argument("--processes", type=int, default=4)
    ap.add_argument("--think-ms", type=float, default=1000.0)
    ap.add_argument("--trials", type=int, default=6)
    ap.add_argument("--traps", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"])
    ap.add_argument("--mode", choices=["app", "store"], default="app",
                    help="app: simulated participants through the app core; store: the vote store alone")
    ap.add_argument("--votes", type=int, default=7, help="store mode: votes per participant")
    ap.add_argument("--workdir")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "RESULTS_study.md"))
    args = ap.parse_args(argv)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="lossarena-load-"))
    work.mkdir(parents=True, exist_ok=True)
    study = build(work, args.trials, args.traps)
    info = machine()
    rows = []
    for b in args.backends:
        if args.mode == "store":
            r = run_store_only(study, b, work, args.participants, args.votes, args.think_ms, args.seed)
        else:
            r = run_load(study, b, work, args.participants, args.processes, args.think_ms, args.seed)
        print(json.dumps(r), flush=True)
        rows.append(r)
    what = "through the app core" if args.mode == "app" else "vote store only"
    md = markdown(rows, f"Load, {what}: {args.participants} concurrent participants "
                        f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})")
    md += f"\nMachine: {info}. Command: `python benchmarks/study_load.py {' '.join(argv or sys.argv[1:])}`\n\n"
    if args.out:
        with open(args.out, "a") as f:
            f.write(md)
    print(md)
    return 0 if all(r["lost"] == 0 and r["duplicated_pairs"] == 0 and not r["errors"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
