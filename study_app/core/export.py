"""``lossarena study export``: the analysis issue's canonical votes CSV.

Columns: ``participant,content,condition_a,condition_b,winner,group,response_time_ms,timestamp``
(``condition_a`` was shown on the left, ``group`` is the target bitrate, ``timestamp`` ISO 8601
UTC). Trap pairs are left out (``include_traps=True`` keeps them, with group ``trap``).
"""

from __future__ import annotations

import csv
from datetime import datetime, timezone
from pathlib import Path

from .config import load_config
from .store import SqlStore, open_store

COLUMNS = ("participant", "content", "condition_a", "condition_b", "winner", "group", "response_time_ms", "timestamp")


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def vote_rows(store: SqlStore, study_id: str, include_traps: bool = False) -> list[dict]:
    rows = store.all_votes(study_id, kind=None if include_traps else "trial")
    return [{
        "participant": r["participant"], "content": r["content"], "condition_a": r["condition_a"],
        "condition_b": r["condition_b"], "winner": r["winner"],
        "group": r["grp"] if r["kind"] == "trial" else "trap",
        "response_time_ms": "" if r["response_time_ms"] is None else int(r["response_time_ms"]),
        "timestamp": iso(r["timestamp"]),
    } for r in rows]


def write_votes_csv(rows: list[dict], out_csv: str | Path) -> Path:
    out = Path(out_csv)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(COLUMNS))
        w.writeheader()
        w.writerows(rows)
    return out


def votes_csv_text(rows: list[dict]) -> str:
    import io

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(COLUMNS))
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def export_votes(study_dir: str | Path, db_url: str | None, out_csv: str | Path, include_traps: bool = False) -> Path:
    """Write the study's votes to ``out_csv``; returns the path."""
    cfg = load_config(study_dir)
    store = open_store(db_url or cfg.default_db_url())
    try:
        return write_votes_csv(vote_rows(store, cfg.study_id, include_traps), out_csv)
    finally:
        store.dispose()
