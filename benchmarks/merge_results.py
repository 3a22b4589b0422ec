"""Fold the per-area result notes (benchmarks/RESULTS_<area>.md) into benchmarks/RESULTS.md.

Each area's benchmark scripts write (or append to) their own RESULTS_<area>.md; RESULTS.md is the one
file to read, regenerated with ``python benchmarks/merge_results.py`` after a benchmark run.
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).parent
ORDER = ["metrics", "codecs", "roi", "study", "analysis", "benchmark", "benchmark_speed"]
HEADER = """# Benchmark results

Measured on this project's development machine: x86_64, 2 CPU cores shared with other work (the load
average is given where it mattered), no GPU — **no GPU numbers exist yet** (no GPU machine was lent to
the sessions so far). Every ratio compares against the reference implementation measured side by side
in the same run. Scripts live beside this file; each section names its command. This file is generated
by `benchmarks/merge_results.py` from the per-area `RESULTS_<area>.md` notes the scripts write.

"""


def main() -> None:
    notes = {p.stem.removeprefix("RESULTS_"): p for p in HERE.glob("RESULTS_*.md")}
    keys = [k for k in ORDER if k in notes] + sorted(set(notes) - set(ORDER))
    parts = [HEADER]
    for k in keys:
        text = notes[k].read_text().strip()
        lines = text.splitlines()
        # demote headings one level so each area is a section of this file
        lines = ["#" + ln if ln.startswith("#") else ln for ln in lines]
        parts.append("\n".join(lines) + "\n")
    (HERE / "RESULTS.md").write_text("\n".join(parts))


if __name__ == "__main__":
    main()
