"""What the admin page shows: progress per content × group × condition, the participants, live
outlier flags. Computed from the store; pages only render the tables.

Flags: the study's quality-control rules (:mod:`.qc`: trap failures, minimum viewing time, side
bias; column ``flags`` lists the reasons, ``flagged`` is what the export and ``verify-code`` act on),
and, for information, the analysis package's :func:`lossarena.analysis.outliers.score_outliers`
(circular triads / zeta and the Thurstone likelihood score; run without leave-one-out for speed)
(column ``is_outlier`` = flagged or a statistical outlier).
"""

from __future__ import annotations

from collections import defaultdict

import pandas as pd
from lossarena.analysis.outliers import score_outliers

from .export import vote_rows
from .qc import flags_by_participant
from .session import TRAP_A, StudyRuntime


def progress_table(rt: StudyRuntime) -> pd.DataFrame:
    tallies = rt.store.group_tallies(rt.study_id)
    comp: dict[tuple, float] = defaultdict(float)
    wins: dict[tuple, float] = defaultdict(float)
    for content, grp, ca, cb, winner, n in tallies:
        for c in (ca, cb):
            comp[(content, grp, c)] += n
        if winner in (ca, cb):
            wins[(content, grp, winner)] += n
        else:
            wins[(content, grp, ca)] += n / 2
            wins[(content, grp, cb)] += n / 2
    rows = []
    for g in rt.cfg.groups:
        # triplet design: one row per presentation (plain / boosted); a "win" = judged closer to the reference
        grps = [g.group] if rt.cfg.design != "triplet" else sorted({"plain", rt.cfg.triplet.label})
        for grp in grps:
            for c in g.conditions:
                k = (g.content, grp, c)
                rows.append({"content": g.content, "group": grp, "condition": c, "comparisons": int(comp[k]),
                             "wins": wins[k], "win_rate": round(wins[k] / comp[k], 3) if comp[k] else None})
    return pd.DataFrame(rows)


def participants_table(rt: StudyRuntime) -> pd.DataFrame:
    max_trap_failures = rt.cfg.qc.max_trap_failures
    parts = rt.store.list_participants(rt.study_id)
    all_votes = rt.store.all_votes(rt.study_id, kind=None)
    qc_flags = flags_by_participant(all_votes, rt.cfg.qc)
    n_trials: dict[str, int] = defaultdict(int)
    trap_fail: dict[str, int] = defaultdict(int)
    trap_n: dict[str, int] = defaultdict(int)
    for v in all_votes:
        if v["kind"] == "trap":
            trap_n[v["participant"]] += 1
            trap_fail[v["participant"]] += v["winner"] != TRAP_A
        else:
            n_trials[v["participant"]] += 1
    rows = []
    for p in parts:
        pid = p["participant"]
        disp = p.get("display") or {}
        rows.append({
            "participant": pid, "session": p["session_no"] + 1, "stage": p["stage"], "trials": n_trials[pid],
            "traps_failed": f"{trap_fail[pid]}/{trap_n[pid]}", "training_correct": p["training_correct"],
            "display": f"{disp.get('physical_w', '?')}x{disp.get('physical_h', '?')}, {disp.get('diagonal_in', '?')} in"
            if disp else "",
            "trap_flag": trap_fail[pid] > max_trap_failures,
            "flagged": bool(qc_flags.get(pid)),
            "flags": "; ".join(qc_flags.get(pid, [])) or ("ended: " + p["refusal"] if p.get("refusal") else ""),
            "reloads": int(p.get("reloads") or 0), "display_attempts": int(p.get("display_attempts") or 0),
        })
    df = pd.DataFrame(rows, columns=["participant", "session", "stage", "trials", "traps_failed",
                                     "training_correct", "display", "trap_flag", "flagged", "flags", "reloads",
                                     "display_attempts"])
    flags = outlier_flags(rt)
    if flags is not None and len(df):
        df = df.merge(flags, on="participant", how="left")
        df["is_outlier"] = df["is_outlier"].fillna(False).astype(bool) | df["flagged"]
    else:
        df["is_outlier"] = df["flagged"]
    return df


def outlier_flags(rt: StudyRuntime) -> pd.DataFrame | None:
    """Per participant: circular_triads, zeta, likelihood_score, is_outlier (None with < 3 participants)."""
    rows = vote_rows(rt.store, rt.study_id)
    if len({r["participant"] for r in rows}) < 3:
        return None
    df = pd.DataFrame(rows)
    out = score_outliers(df, loo=False, prior="ridge", progress=False)
    return out[["participant", "circular_triads", "zeta", "likelihood_score", "is_outlier"]]
