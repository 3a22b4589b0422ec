"""Sampler convergence: Kendall tau between the recovered ranking and the true one against the
number of trials, for ``adjacent``, ``full`` and ``active`` (simulated Thurstone observers, 6
conditions evenly spaced over 3 units, 5 pairs per participant; the same simulation as
tests/study_app/test_study_samplers.py, more seeds). Appends a table to benchmarks/RESULTS_study.md.

    python benchmarks/study_samplers.py --seeds 10
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def main(argv=None) -> int:
    import test_study_samplers as T

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "RESULTS_study.md"))
    args = ap.parse_args(argv)
    T.CHECKPOINTS = (10, 20, 40, 80, 160)
    rows = []
    for name in ("adjacent", "full", "active"):
        taus = [T.run(name, seed=100 + s, total=T.CHECKPOINTS[-1])[0] for s in range(args.seeds)]
        mean = [float(np.mean([t[c] for t in taus])) for c in T.CHECKPOINTS]
        rows.append((name, mean))
        print(name, [round(m, 3) for m in mean], flush=True)
    md = [f"### Sampler convergence: mean Kendall tau vs trials ({args.seeds} seeds, "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})", "",
          "| sampler | " + " | ".join(f"{c} trials" for c in T.CHECKPOINTS) + " |",
          "|---|" + "---|" * len(T.CHECKPOINTS)]
    md += [f"| {n} | " + " | ".join(f"{m:.3f}" for m in ms) + " |" for n, ms in rows]
    text = "\n".join(md) + f"\n\nCommand: `python benchmarks/study_samplers.py --seeds {args.seeds}`\n\n"
    if args.out:
        with open(args.out, "a") as f:
            f.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
