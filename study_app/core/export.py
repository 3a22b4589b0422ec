"""``lossarena study export``: the analysis issue's canonical votes CSV.

Columns: ``participant,content,condition_a,condition_b,winner,group,response_time_ms,timestamp``
(``condition_a`` was shown on the left, ``group`` is the target bitrate, ``timestamp`` ISO 8601
UTC of the commit), then the per-trial log: ``server_time_ms`` (pair issued -> vote committed, measured
on the server; includes prefetch and delivery), ``window_w,window_h`` (window inner size, CSS px),
``screen_w,screen_h`` (CSS px), ``dpr``, ``reloads`` (page loads after the first), ``toggles`` (image
switches in the toggle view for this pair). ``response_time_ms`` is measured in the browser, from
the moment both images were decoded and painted to the key press or click.

Trap pairs are left out (``include_traps=True`` keeps them, with group ``trap``), and so are the votes
of participants flagged by quality control (:mod:`.qc`; ``include_flagged=True`` keeps them).
"""

from __future__ import annotations

import csv
from datetime import datetime, timezone
from pathlib import Path

from .config import QualityControl, load_config
from .qc import flags_by_participant
from .store import SqlStore, open_store

COLUMNS = ("participant", "content", "condition_a", "condition_b", "winner", "group", "response_time_ms", "timestamp",
           "server_time_ms", "window_w", "window_h", "screen_w", "screen_h", "dpr", "reloads", "toggles")
CLIENT_FIELDS = ("window_w", "window_h", "screen_w", "screen_h", "dpr", "reloads", "toggles")


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _client_value(client, k):
    v = (client or {}).get(k) if isinstance(client, dict) else None
    return "" if v is None or isinstance(v, bool) or not isinstance(v, (int, float)) else v


def vote_rows(store: SqlStore, study_id: str, include_traps: bool = False, qc: QualityControl | None = None,
              include_flagged: bool = True) -> list[dict]:
    """The export rows. With ``qc`` and ``include_flagged=False`` the votes of participants that
    quality control flags are left out."""
    everything = store.all_votes(study_id, kind=None)
    skip: set[str] = set()
    if not include_flagged:
        skip = {p for p, why in flags_by_participant(everything, qc or QualityControl()).items() if why}
    rows = [r for r in everything if (include_traps or r["kind"] == "trial") and r["participant"] not in skip]
    return [{
        "participant": r["participant"], "content": r["content"], "condition_a": r["condition_a"],
        "condition_b": r["condition_b"], "winner": r["winner"],
        "group": r["grp"] if r["kind"] == "trial" else "trap",
        "response_time_ms": "" if r["response_time_ms"] is None else int(r["response_time_ms"]),
        "timestamp": iso(r["timestamp"]),
        "server_time_ms": "" if r.get("server_time_ms") is None else round(float(r["server_time_ms"]), 1),
        **{k: _client_value(r.get("client"), k) for k in CLIENT_FIELDS},
    } for r in rows]


def write_votes_csv(rows: list[dict], out_csv: str | Path) -> Path:
    """Write through the one definition of ``votes.csv`` (:data:`lossarena.data.schemas.VOTES`):
    its columns in canonical order, then the per-trial log columns; atomically. An empty study
    writes the header only."""
    import pandas as pd
    from lossarena.data.schemas import VOTES, write_table

    return write_table(pd.DataFrame(rows, columns=list(COLUMNS)), out_csv, VOTES)


def votes_csv_text(rows: list[dict]) -> str:
    import io

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(COLUMNS))
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def export_votes(study_dir: str | Path, db_url: str | None, out_csv: str | Path, include_traps: bool = False,
                 include_flagged: bool = False) -> Path:
    """Write the study's votes to ``out_csv`` (flagged participants left out unless
    ``include_flagged``); returns the path."""
    cfg = load_config(study_dir)
    store = open_store(db_url or cfg.default_db_url())
    try:
        return write_votes_csv(vote_rows(store, cfg.study_id, include_traps, cfg.qc, include_flagged), out_csv)
    finally:
        store.dispose()
