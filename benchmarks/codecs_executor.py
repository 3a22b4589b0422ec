"""Local zoo executor: a fresh process per job (the previous executor) against long-lived slot workers.

Trains the same small zoo twice per round on 2 CPU slots: once with every fine-tune in a new
``python -m lossarena.codecs.jobrun JOB.pkl`` process (what ``LocalExecutor`` did before: each process
imports torch and CompressAI again), once through ``LocalExecutor`` (one worker process per slot that
runs its jobs one after another). Rounds alternate the order so machine load hits both alike; the
median wall time of the fine-tune phase and the ratio are printed and appended to RESULTS_codecs.md.

    .venv/bin/python benchmarks/codecs_executor.py --finetunes 8 --steps 20 --rounds 2
"""

from __future__ import annotations

import argparse
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).parent


def _jobs(out: Path, data: str, finetunes: int, steps: int):
    from lossarena.codecs.zoo import plan_zoo

    losses = ["mse", "ssim", "ms-ssim", "gmsd", "nlpd", "fsim", "vsi", "psnr"]
    levels = ["low", "medium", "high"]
    need = -(-finetunes // len(levels))
    cfg = {"seed": 0, "arch": {"N": 48, "M": 64}, "patch": 64, "batch": 4, "threads": 1,
           "base": {"levels": ["medium"], "steps": 5, "lr": 1e-3},
           "finetune": {"losses": losses[:need], "levels": levels, "steps": steps, "lr": 1e-4}}
    jobs, _ = plan_zoo(cfg, out, data, device="cpu", progress=False)
    base = [j for j in jobs if j.kind == "base"]
    return base, [j for j in jobs if j.kind == "finetune"][:finetunes]


def _per_process(jobs, slots: int) -> None:
    """The previous executor's way: one new interpreter per job, ``slots`` at a time."""
    def one(j):
        spec = Path(j.ckpt).with_suffix(".job.pkl")
        spec.write_bytes(pickle.dumps(j))
        r = subprocess.run([sys.executable, "-m", "lossarena.codecs.jobrun", str(spec)], capture_output=True,
                           text=True)
        if r.returncode:
            raise SystemExit(f"{j.name} failed: {r.stderr.strip().splitlines()[-1:]}")

    with ThreadPoolExecutor(slots) as pool:
        list(pool.map(one, jobs))


def _slot_workers(jobs, slots: int) -> None:
    from lossarena.codecs.executors import get_executor

    states = get_executor("local", jobs=slots).run(jobs, say=lambda s: None)
    bad = [k for k, v in states.items() if v != "done"]
    if bad:
        raise SystemExit(f"failed: {bad}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--finetunes", type=int, default=8)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--slots", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--data", default=None, help="training images (default: the demo's bundled photographs)")
    a = ap.parse_args()
    from lossarena.codecs.jobs import run_job
    from lossarena.pipeline.demo_base import training_images

    tmp = Path(tempfile.mkdtemp(prefix="lossarena-exec-"))
    data = a.data or str(training_images(tmp / "data", colour_only=True)[0].parent)
    times: dict[str, list[float]] = {"fresh process per job": [], "slot workers": []}
    for r in range(a.rounds):
        order = list(times) if r % 2 == 0 else list(reversed(times))
        for name in order:
            out = tmp / f"r{r}-{name.split()[0]}"
            base, fts = _jobs(out, data, a.finetunes, a.steps)
            for b in base:
                run_job(b, say=lambda s: None)
            t0 = time.perf_counter()
            (_per_process if name.startswith("fresh") else _slot_workers)(fts, a.slots)
            times[name].append(time.perf_counter() - t0)
            print(f"round {r + 1} {name}: {times[name][-1]:.1f} s", flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    ratio = med["fresh process per job"] / med["slot workers"]
    lines = [
        f"\n## Local zoo executor: slot workers vs a process per job (`benchmarks/codecs_executor.py "
        f"--finetunes {a.finetunes} --steps {a.steps} --slots {a.slots} --rounds {a.rounds}`)\n",
        f"{a.finetunes} fine-tunes of {a.steps} steps (N=48, M=64, 4×64² patches, 1 thread each) on {a.slots} "
        "CPU slots; wall time of the fine-tune phase, median over rounds.\n",
        "| executor | median s | rounds |", "|---|---|---|",
        *[f"| {k} | {med[k]:.1f} | {', '.join(f'{t:.1f}' for t in v)} |" for k, v in times.items()],
        f"\nSlot workers: **{ratio:.2f}×** the speed of a fresh process per job "
        f"({(med['fresh process per job'] - med['slot workers']) / a.finetunes:.1f} s of wall time saved per fine-tune).\n",
    ]
    print("\n".join(lines))
    with open(HERE / "RESULTS_codecs.md", "a") as f:
        f.write("\n".join(lines))


if __name__ == "__main__":
    main()
