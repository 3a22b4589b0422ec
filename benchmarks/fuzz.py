"""The long fuzz run: >= 1,000 seeded cases per file format, in subprocesses with a time and memory limit.

Formats and mutations are those of ``tests/fuzz_cases.py`` (votes, count matrices, pwcmp, HDR-VDC,
AIC-3 CSV and zip, sureal JSON, triplets, CLIC oracle, manifests, images, study configs), with seeds
that ``make test`` does not use. Every case is read through the real command in a worker process
(``RLIMIT_AS`` = ``--mem-gib``; PITFALLS: torch + CUDA libraries need > 4 GiB of address space), twice,
and classified:

``ok``               exit 0;
``clean_errors``     exit 2 with a last stderr line ``error: <file>...`` naming an input file;
``tracebacks``       an exception other than lossarena's typed errors escaped (or a traceback printed);
``multi_line_errors`` exit 2 whose error does not fit the one-line contract, or another exit code;
``crashes``          the worker died (a signal such as SIGSEGV, or killed);
``memory``           ``MemoryError`` under the address-space limit;
``hangs``            the case ran longer than ``--timeout`` seconds (alarm in the worker, watchdog outside);
``nondeterministic`` the two runs differ (exit code, messages, or output files byte for byte).

It then calls the bitstream fuzzer (``benchmarks/fuzz_bitstreams.py``, ``run(n_cases, seed)``) when it
exists, so one command covers every format, re-checks the issue's repro commands as real subprocesses
(``lossarena ...``) and writes ``benchmarks/RESULTS_fuzz.md``::

    nice -n 10 .venv/bin/python benchmarks/fuzz.py --cases 1000            # everything
    .venv/bin/python benchmarks/fuzz.py --cases 50 --formats votes,image --no-bitstreams --no-write
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import select
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))

SEED0 = 100_000  # far from the seeds the tests use (0..N)
KEYS = ("cases", "ok", "clean_errors", "tracebacks", "multi_line_errors", "crashes", "memory", "hangs",
        "nondeterministic")


# ---------------------------------------------------------------------------------------------- worker


class _Alarm(Exception):
    pass


def _alarm(signum, frame):
    raise _Alarm()


def _normalise(o, case_dir: Path, out_dir: Path) -> dict:
    def n(s: str) -> str:
        return s.replace(str(out_dir), "<OUT>").replace(str(case_dir), "<IN>")

    return {"rc": o.rc, "err": n(o.err), "out": n(o.out), "files": {k: v.hex() for k, v in o.files.items()}}


def worker(fmt_name: str, start: int, stop: int, timeout: float) -> None:
    """Run cases ``start..stop-1``; one JSON line per event on stdout (``begin`` before each case)."""
    import logging

    import fuzz_cases as F

    logging.disable(logging.WARNING)
    fmt = F.FORMATS[fmt_name]
    signal.signal(signal.SIGALRM, _alarm)
    emit = sys.__stdout__
    # warm the imports once so that the first case's time is the case's own
    with tempfile.TemporaryDirectory() as d:
        paths = F.write_case(fmt, SEED0 - 1, Path(d) / "in")
        try:
            F.run_case(fmt, paths, Path(d) / "out")
        except Exception:  # noqa: BLE001 -- warming only; the real cases report their own errors
            pass
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"ready": True, "base_rss_mb": base_rss}), file=emit, flush=True)
    for seed in range(start, stop):
        print(json.dumps({"begin": seed}), file=emit, flush=True)
        t0 = time.perf_counter()
        rec = {"seed": seed}
        with tempfile.TemporaryDirectory() as d:
            case = Path(d) / "in"
            paths = F.write_case(fmt, seed, case)
            runs = []
            try:
                signal.setitimer(signal.ITIMER_REAL, timeout)
                for k in (1, 2):
                    o = F.run_case(fmt, paths, Path(d) / f"out{k}")
                    runs.append((o, _normalise(o, case, Path(d) / f"out{k}")))
                signal.setitimer(signal.ITIMER_REAL, 0)
                o = runs[0][0]
                v = F.contract_violation(o, paths)
                if runs[0][1] != runs[1][1]:
                    rec.update(kind="nondeterministic", detail=_diff(runs[0][1], runs[1][1]))
                elif v is None:
                    rec.update(kind="ok" if o.rc == 0 else "clean_errors", detail=o.last_line[:300])
                elif "Traceback" in v:
                    rec.update(kind="tracebacks", detail=v)
                else:
                    rec.update(kind="multi_line_errors", detail=v)
            except _Alarm:
                rec.update(kind="hangs", detail=f"longer than {timeout} s")
            except MemoryError:
                signal.setitimer(signal.ITIMER_REAL, 0)
                rec.update(kind="memory", detail="MemoryError")
            except BaseException as e:  # noqa: BLE001 -- classifying every escape is the point
                signal.setitimer(signal.ITIMER_REAL, 0)
                import traceback

                tb = traceback.extract_tb(e.__traceback__)[-1]
                rec.update(kind="tracebacks", detail=f"{type(e).__name__}: {str(e)[:160]} at {tb.filename}:{tb.lineno}")
        rec["s"] = round(time.perf_counter() - t0, 4)
        rec["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(rec), file=emit, flush=True)


def _diff(a: dict, b: dict) -> str:
    for k in ("rc", "err", "out"):
        if a[k] != b[k]:
            return f"{k}: {str(a[k])[-120:]!r} vs {str(b[k])[-120:]!r}"
    return "output files differ: " + ", ".join(k for k in set(a["files"]) | set(b["files"])
                                               if a["files"].get(k) != b["files"].get(k))


# ---------------------------------------------------------------------------------------------- parent


def _limits(mem_gib: float):
    def f():
        lim = int(mem_gib * (1 << 30))
        resource.setrlimit(resource.RLIMIT_AS, (lim, lim))
        os.setsid()

    return f


def fuzz_format(name: str, n: int, seed0: int, timeout: float, mem_gib: float, log) -> dict:
    """All ``n`` cases of one format, restarting the worker after a crash or a hang."""
    stats = dict.fromkeys(KEYS, 0)
    stats.update(peak_rss_mb=0.0, base_rss_mb=0.0, max_case_s=0.0, failures=[])
    t_start = time.perf_counter()
    seed, stop = seed0, seed0 + n
    env = dict(os.environ, PYTHONHASHSEED="0", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    while seed < stop:
        cmd = [sys.executable, __file__, "--worker", name, "--start", str(seed), "--stop", str(stop),
               "--timeout", str(timeout)]
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
                             preexec_fn=_limits(mem_gib), cwd=ROOT)
        current, ready = None, False
        fd = p.stdout.fileno()
        buf, last = b"", time.monotonic()
        while True:
            r, _, _ = select.select([fd], [], [], 0.05)
            chunk = os.read(fd, 65536) if r else b""
            if chunk:
                buf += chunk
                last = time.monotonic()
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    rec = json.loads(line)
                    if rec.get("ready"):
                        ready = True
                        stats["base_rss_mb"] = max(stats["base_rss_mb"], rec["base_rss_mb"])
                    elif "begin" in rec:
                        current = rec["begin"]
                    else:
                        _count(stats, rec)
                        current = None
                        seed = rec["seed"] + 1
            elif r or p.poll() is not None:  # readable but empty: end of file
                p.wait()
                break
            else:
                limit = (timeout + 30) if ready else 600
                if time.monotonic() - last > limit:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait()
                    if current is not None:
                        _count(stats, {"seed": current, "kind": "hangs", "detail": "watchdog: no answer", "s": limit})
                        seed = current + 1
                    break
        if p.returncode not in (0, None) and current is not None:
            sig = -p.returncode if p.returncode < 0 else None
            kind = "memory" if sig == signal.SIGKILL else "crashes"
            _count(stats, {"seed": current, "kind": kind, "detail": f"worker died: exit {p.returncode}"
                           + (f" ({signal.Signals(sig).name})" if sig else ""), "s": 0})
            seed = current + 1
        elif p.returncode not in (0, None) and not ready:
            raise RuntimeError(f"{name}: the worker could not start (exit {p.returncode})")
    stats["wall_s"] = round(time.perf_counter() - t_start, 1)
    log(f"{name}: " + ", ".join(f"{k} {stats[k]}" for k in KEYS) + f"; peak RSS {stats['peak_rss_mb']:.0f} MB, "
        f"slowest case {stats['max_case_s']:.2f} s, {stats['wall_s']} s")
    return stats


def _count(stats: dict, rec: dict) -> None:
    stats["cases"] += 1
    stats[rec["kind"]] += 1
    stats["max_case_s"] = max(stats["max_case_s"], rec.get("s", 0))
    stats["peak_rss_mb"] = max(stats["peak_rss_mb"], rec.get("rss_mb", 0))
    if rec["kind"] not in ("ok", "clean_errors") and len(stats["failures"]) < 20:
        stats["failures"].append({"seed": rec["seed"], "kind": rec["kind"], "detail": rec.get("detail", "")})


# ---------------------------------------------------------------------------------------------- repro


def repro(log) -> list[dict]:
    """The issue's repro commands as real ``lossarena`` subprocesses: exit code, time, peak memory."""
    import fuzz_cases as F

    d = Path(tempfile.mkdtemp(prefix="lossarena-repro-"))
    files = {
        "string.json": b'"a JSON string, not a sureal dataset"',
        "inf.csv": b",a,b\na,0,inf\nb,1,0\n",
        "1e400.csv": b",a,b\na,0,1e400\nb,1,0\n",
        "negative.csv": b",a,b\na,0,-3\nb,1,0\n",
        "fraction.csv": b",a,b\na,0,2.25\nb,1,0\n",
        "notazip.zip": b"this is not a zip archive\n",
        "line_column.csv": b"participant,content,condition_a,condition_b,winner,_line\np,c,a,b,a,99\n",
        "extra_field.csv": b"participant,content,condition_a,condition_b,winner\np,c,a,b,a,surplus\n",
        "header_only.csv": b"participant,content,condition_a,condition_b,winner\n",
        "tie_upper.csv": b"participant,content,condition_a,condition_b,winner,group\np,img1,mse,lpips,TIE,0.25\n",
        "oracle_latin1.csv": b"o.png,a\xe9.png,b.png,0\n",
        "oracle_200k.csv": b"o.png," + b"a" * 200_000 + b",b.png,0\n",
        "counts_1e7.csv": b",a,b\na,0,10000000\nb,0,0\n",
        "counts_3e7.csv": b",a,b\na,0,30000000\nb,0,0\n",
        "manifest.csv": F.MANIFEST.encode(),
    }
    for k, v in files.items():
        (d / k).write_bytes(v)
    (d / "bomb_10k.png").write_bytes(F.png_with_size(10000, 10000))
    (d / "bomb_14k.png").write_bytes(F.png_with_size(14000, 14000))
    (d / "bomb16_12k.png").write_bytes(F.png_with_size(12000, 12000, bits=16))
    (d / "ref.png").write_bytes(F.png_with_size(4, 4))
    (d / "anim.gif").write_bytes(F._gif_animated())
    o = str(d / "out")
    cmds = [
        ("JSON string where a sureal dataset is expected", ["analysis", "convert", "string.json", "--out", o + "1.csv"]),
        ("`inf` count", ["analysis", "convert", "inf.csv", "--format", "counts", "--out", o + "2.csv"]),
        ("`1e400` count", ["analysis", "convert", "1e400.csv", "--format", "counts", "--out", o + "3.csv"]),
        ("negative count", ["analysis", "convert", "negative.csv", "--format", "counts", "--out", o + "4.csv"]),
        ("non-integer count", ["analysis", "convert", "fraction.csv", "--format", "counts", "--out", o + "5.csv"]),
        ("a .zip that is not a zip", ["analysis", "convert", "notazip.zip", "--out", o + "6.csv"]),
        ("a user column named `_line`", ["analysis", "convert", "line_column.csv", "--out", o + "7.csv"]),
        ("an extra field on the first row", ["analysis", "convert", "extra_field.csv", "--out", o + "8.csv"]),
        ("`analysis report` on a header-only file", ["analysis", "report", "header_only.csv", "--out", o + "_rep"]),
        ("`benchmark convert clic` on non-UTF-8", ["benchmark", "convert", "clic", "oracle_latin1.csv", "--out",
                                                   o + "9.csv"]),
        ("`benchmark convert clic` with a 200k-character field", ["benchmark", "convert", "clic", "oracle_200k.csv",
                                                                  "--out", o + "10.csv"]),
        ("`TIE` in `analysis` (a tie, the one rule)", ["analysis", "convert", "tie_upper.csv", "--out", o + "11.csv"]),
        ("`TIE` in `benchmark convert votes` (a tie, the one rule)",
         ["benchmark", "convert", "votes", "tie_upper.csv", "--manifest", "manifest.csv", "--out", o + "12.csv",
          "--include-reference-pairs"]),
        ("header-only votes in `benchmark convert votes`", ["benchmark", "convert", "votes", "header_only.csv",
                                                            "--manifest", "manifest.csv", "--out", o + "13.csv"]),
        ("24-byte count matrix, 10,000,000 votes (`analysis scale`)",
         ["analysis", "scale", "counts_1e7.csv", "--format", "counts", "--bootstrap", "0", "--out", o + "14.csv"]),
        ("count matrix, 30,000,000 votes (`analysis report`)",
         ["analysis", "report", "counts_3e7.csv", "--format", "counts", "--bootstrap", "20", "--out", o + "_rep2"]),
        ("10000² PNG header (97 KB in the issue)", ["metrics", "score", "ref.png", "bomb_10k.png", "-m", "psnr"]),
        ("14000² PNG header (DecompressionBombError)", ["metrics", "score", "ref.png", "bomb_14k.png", "-m", "psnr"]),
        ("16-bit 12000² PNG header", ["metrics", "score", "ref.png", "bomb16_12k.png", "-m", "psnr"]),
        ("animated GIF", ["metrics", "score", "ref.png", "anim.gif", "-m", "psnr"]),
    ]
    exe = str(Path(sys.executable).with_name("lossarena"))
    rows = []
    timer = Path("/usr/bin/time")
    for what, argv in cmds:
        t0 = time.perf_counter()
        mem = d / "maxrss.txt"
        pre = [str(timer), "-q", "-f", "%M", "-o", str(mem)] if timer.exists() else []
        p = subprocess.run([*pre, exe, *argv], cwd=d, capture_output=True, text=True, timeout=600)
        dt = time.perf_counter() - t0
        peak = int(mem.read_text().split()[-1]) / 1024 if pre and mem.exists() else None
        err = [ln for ln in p.stderr.splitlines() if ln.strip()]
        last = err[-1] if err else ""
        rows.append({"what": what, "cmd": "lossarena " + " ".join(argv).replace(o, "OUT"), "rc": p.returncode,
                     "s": round(dt, 1), "peak_mb": round(peak) if peak else None,
                     "message": last.replace(str(d) + "/", "")[:160] if p.returncode else p.stdout.strip()[:160],
                     "traceback": "Traceback" in p.stderr})
        log(f"repro: {what}: exit {p.returncode} in {dt:.1f} s: {rows[-1]['message'][:100]}")
    return rows


# ---------------------------------------------------------------------------------------------- report


def _base(s: dict) -> str:
    return f" ({s['base_rss_mb']:.0f})" if s.get("base_rss_mb") else ""


def write_results(stats: dict, bits: dict | None, rows: list[dict], args, path: Path) -> None:
    load = os.getloadavg()[0]
    lines = ["# Hostile input: fuzzing (readers, images, configs; bitstreams)", "",
             f"`nice -n 10 .venv/bin/python benchmarks/fuzz.py --cases {args.cases}` — seeds from {args.seed0}, "
             f"{args.timeout:g} s per case, address space limited to {args.mem_gib:g} GiB per worker, every case run "
             f"twice and compared byte for byte; load average {load:.1f} on 2 shared cores. Cases and mutations: "
             "`tests/fuzz_cases.py` (the same generators run a few hundred cases in `make test`).", "",
             "| format | cases | exit 0 | clean exit 2 | tracebacks | other contract breaks | crashes | memory "
             "| hangs | nondeterministic | peak RSS MB (after imports) | slowest case s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, s in stats.items():
        lines.append(f"| {name} | {s['cases']} | {s['ok']} | {s['clean_errors']} | {s['tracebacks']} | "
                     f"{s['multi_line_errors']} | {s['crashes']} | {s['memory']} | {s['hangs']} | "
                     f"{s['nondeterministic']} | {s['peak_rss_mb']:.0f}{_base(s)} | "
                     f"{s['max_case_s']:.2f} |")
    tot = {k: sum(s[k] for s in stats.values()) for k in KEYS}
    lines.append(f"| **all** | {tot['cases']} | {tot['ok']} | {tot['clean_errors']} | {tot['tracebacks']} | "
                 f"{tot['multi_line_errors']} | {tot['crashes']} | {tot['memory']} | {tot['hangs']} | "
                 f"{tot['nondeterministic']} | | |")
    if bits:
        lines += ["", "Bitstreams (`benchmarks/fuzz_bitstreams.py` `run()`, its own workers and limits; details in "
                  "RESULTS_fuzz_bitstreams.md):", "",
                  "| codec | cases | ok | clean errors | crashes | tracebacks | hangs | memory | nondeterministic "
                  "| peak RSS MB |", "|---|---|---|---|---|---|---|---|---|---|"]
        for codec, s in bits.items():
            lines.append(f"| {codec} | {s.get('cases')} | {s.get('ok')} | {s.get('clean_errors')} | {s.get('crashes')} "
                         f"| {s.get('tracebacks')} | {s.get('hangs')} | {s.get('memory')} | {s.get('nondeterministic')} "
                         f"| {s.get('peak_rss_mb', 0):.0f} |")
    fails = [(n, f) for n, s in stats.items() for f in s["failures"]]
    if fails:
        lines += ["", "Failures (first 20 per format; reproduce with `tests/fuzz_cases.write_case(FORMATS[name], seed, dir)`):", ""]
        lines += [f"- {n} seed {f['seed']}: {f['kind']}: `{f['detail'][:200]}`" for n, f in fails]
    lines += ["", "The issue's repro commands, run as `lossarena` subprocesses (exit 0 = read correctly, 2 = refused "
              "with one line; peak RSS of the process):", "",
              "| case | exit | s | peak RSS MB | traceback | last line |", "|---|---|---|---|---|---|"]
    for r in rows:
        msg = r["message"].replace("|", "\\|")
        lines.append(f"| {r['what']} | {r['rc']} | {r['s']} | {r['peak_mb'] or ''} | {'yes' if r['traceback'] else 'no'} "
                     f"| `{msg}` |")
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=1000, help="cases per format (default 1000)")
    ap.add_argument("--formats", default="", help="comma-separated subset (default: all)")
    ap.add_argument("--seed0", type=int, default=SEED0)
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds per case (both runs)")
    ap.add_argument("--mem-gib", type=float, default=8.0, help="address-space limit per worker")
    ap.add_argument("--jobs", type=int, default=1, help="formats fuzzed in parallel (one worker each)")
    ap.add_argument("--bitstream-cases", type=int, default=None, help="default: --cases")
    ap.add_argument("--no-bitstreams", action="store_true")
    ap.add_argument("--no-repro", action="store_true")
    ap.add_argument("--no-write", action="store_true", help="print only; do not write RESULTS_fuzz.md")
    ap.add_argument("--stats-json", help="also save the per-format statistics and repro rows as JSON")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--start", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--stop", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args.worker, args.start, args.stop, args.timeout)
        return 0
    import fuzz_cases as F

    def log(msg: str) -> None:
        print(msg, flush=True)

    names = [n for n in args.formats.split(",") if n] or list(F.FORMATS)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max(1, args.jobs)) as ex:
        futs = {n: ex.submit(fuzz_format, n, args.cases, args.seed0, args.timeout, args.mem_gib, log) for n in names}
        stats = {n: f.result() for n, f in futs.items()}
    bits = None
    if not args.no_bitstreams and (HERE / "fuzz_bitstreams.py").is_file():
        import importlib.util

        spec = importlib.util.spec_from_file_location("fuzz_bitstreams", HERE / "fuzz_bitstreams.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        bits = mod.run(args.bitstream_cases or args.cases, args.seed0)
        for codec, s in bits.items():
            log(f"bitstreams {codec}: " + ", ".join(f"{k} {s.get(k)}" for k in
                                                    ("cases", "ok", "clean_errors", "crashes", "hangs", "nondeterministic")))
    rows = [] if args.no_repro else repro(log)
    if args.stats_json:
        Path(args.stats_json).write_text(json.dumps({"stats": stats, "bitstreams": bits, "repro": rows}, indent=1))
    if not args.no_write:
        write_results(stats, bits, rows, args, HERE / "RESULTS_fuzz.md")
        log(f"wrote {HERE / 'RESULTS_fuzz.md'}")
    bad = sum(s[k] for s in stats.values() for k in KEYS[3:])
    bad += sum(1 for r in rows if r["rc"] not in (0, 2) or r["traceback"])
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
