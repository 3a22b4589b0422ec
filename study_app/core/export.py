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

A **triplet** study (design ``triplet``) is exported as the *lossarena triplet export* that
``lossarena analysis jnd`` reads (docs/analysis.md): ``participant,content,condition_a,condition_b,
winner,boost,batch,is_trap,is_bias`` -- ``condition_a``/``condition_b`` the test images shown left /
right (the original is ``reference``), ``winner`` the image **closer to** the reference (``tie`` for
"not sure"), ``boost`` ``plain`` or the boosts (``zoom,flicker,amplify``), ``batch`` the participant,
``is_trap``/``is_bias`` 0/1 (trap and bias triplets are always included: the JND fit screens with
them) -- then ``answer`` (the participant's own answer: the side judged **more** distorted, ``left``,
``right`` or ``notsure``, AIC-3's ``response``), ``response_time_ms,timestamp`` and the per-trial log,
ending with ``blanked,late`` (study.yaml ``triplet.timing: aic3``; empty otherwise).
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
# triplet per-trial log after the shared fields: blanked (1: answered while a boosted triplet was blanked)
# and late (1: answered after the AIC-3 answer window); empty without AIC-3 timing
TRIPLET_CLIENT_FIELDS = (*CLIENT_FIELDS, "blanked", "late")
TRIPLET_COLUMNS = ("participant", "content", "condition_a", "condition_b", "winner", "boost", "batch", "is_trap",
                   "is_bias", "answer", "response_time_ms", "timestamp", "server_time_ms", *TRIPLET_CLIENT_FIELDS)


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


def triplet_rows(store: SqlStore, study_id: str, qc: QualityControl | None = None,
                 include_flagged: bool = True) -> list[dict]:
    """The triplet export rows (:data:`TRIPLET_COLUMNS`), traps and bias triplets included."""
    everything = store.all_votes(study_id, kind=None)
    skip: set[str] = set()
    if not include_flagged:
        skip = {p for p, why in flags_by_participant(everything, qc or QualityControl()).items() if why}
    out = []
    for r in everything:
        if r["participant"] in skip:
            continue
        client = r.get("client") if isinstance(r.get("client"), dict) else {}
        ans = client.get("answer")
        if ans not in ("left", "right", "notsure"):  # derived from the stored winner (closer) otherwise
            ans = "notsure" if r["winner"] == "tie" else ("right" if r["winner"] == r["condition_a"] else "left")
        out.append({
            "participant": r["participant"], "content": r["content"], "condition_a": r["condition_a"],
            "condition_b": r["condition_b"], "winner": r["winner"], "boost": r["grp"], "batch": r["participant"],
            "is_trap": int(r["kind"] == "trap"), "is_bias": int(r["kind"] == "bias"), "answer": ans,
            "response_time_ms": "" if r["response_time_ms"] is None else int(r["response_time_ms"]),
            "timestamp": iso(r["timestamp"]),
            "server_time_ms": "" if r.get("server_time_ms") is None else round(float(r["server_time_ms"]), 1),
            **{k: _client_value(client, k) for k in TRIPLET_CLIENT_FIELDS},
        })
    return out


def write_triplets_csv(rows: list[dict], out_csv: str | Path) -> Path:
    """Write the triplet export atomically (header only for an empty study)."""
    import os
    import tempfile

    out = Path(out_csv)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=list(TRIPLET_COLUMNS))
            w.writeheader()
            w.writerows(rows)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out


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


def export_text(store: SqlStore, cfg, include_flagged: bool = False) -> str:
    """The study's export as CSV text (the admin page's downloads): votes.csv for a pairwise study,
    the triplet export for a triplet study."""
    if cfg.design == "triplet":
        import io

        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(TRIPLET_COLUMNS))
        w.writeheader()
        w.writerows(triplet_rows(store, cfg.study_id, cfg.qc, include_flagged))
        return buf.getvalue()
    return votes_csv_text(vote_rows(store, cfg.study_id, qc=cfg.qc, include_flagged=include_flagged))


def export_votes(study_dir: str | Path, db_url: str | None, out_csv: str | Path, include_traps: bool = False,
                 include_flagged: bool = False) -> Path:
    """Write the study's votes to ``out_csv`` (flagged participants left out unless
    ``include_flagged``); returns the path. A triplet study writes the triplet export (module
    docstring; ``include_traps`` does not apply: traps and bias triplets are always in it)."""
    cfg = load_config(study_dir)
    store = open_store(db_url or cfg.default_db_url())
    try:
        if cfg.design == "triplet":
            return write_triplets_csv(triplet_rows(store, cfg.study_id, cfg.qc, include_flagged), out_csv)
        return write_votes_csv(vote_rows(store, cfg.study_id, include_traps, cfg.qc, include_flagged), out_csv)
    finally:
        store.dispose()
