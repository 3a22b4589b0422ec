"""2AFC triplets: the canonical ``triplets.csv`` and loaders for public datasets and the study's votes.

The canonical file has one row per triplet, columns ``reference,a,b,p_a``:

* ``reference``, ``a``, ``b``: image paths relative to an images folder (``--images``);
* ``p_a``: the fraction of human judgments that found ``a`` closer to (better than) the reference;
  0 or 1 for a single vote, ½ for a tie.

Loaders (each returns a :class:`pandas.DataFrame` with these columns and can write the CSV):

* :func:`bapps_to_triplets` — BAPPS 2AFC folders ``ref/ p0/ p1/ judge/`` (``judge/*.npy`` holds the
  fraction of humans who preferred ``p1``; so ``a = p0`` and ``p_a = 1 - judge``);
* :func:`clic_to_triplets` — CLIC 2021/2022 perceptual track ``oracle.csv`` (no header, ``O,A,B,T``;
  ``T = 0`` means ``A`` was preferred, so ``p_a = 1 - T``); every row is kept (repeated and
  contradictory judgments included), as the CLIC scoring counts rows;
* :func:`pieapp_to_triplets` — PieAPP ``labels/<split>/<ref>_pairwise_labels.csv`` (probability of
  preference for ``A``);
* :func:`votes_to_triplets` — the study's ``votes.csv`` plus the stimuli ``manifest.csv``: every
  compared pair with its reference becomes one triplet, ``p_a`` = (wins of a + ½ ties) / votes.
"""

from __future__ import annotations

import logging
import math
import os
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

from lossarena.errors import InputError

from .schemas import (
    LINE,
    MANIFEST,
    REFERENCE,
    TIE,
    TRIPLETS,
    VOTES,
    SchemaError,
    read_raw,
    read_table,
    show,
    validate_votes,
    vote_weights,
    write_table,
)

TRIPLET_COLUMNS = TRIPLETS.names
log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------
# canonical file


def validate_triplets(df: pd.DataFrame, source: str = "triplets") -> pd.DataFrame:
    """Check columns and values; return a clean copy (strings, float ``p_a``) with the 4 columns first.

    Raises
    ------
    SchemaError
        Missing columns, no rows, an empty path or ``p_a`` not a number in [0, 1] (naming the line).
    """
    missing = [c for c in TRIPLET_COLUMNS if c not in df.columns]
    if missing:
        raise SchemaError(source, f"missing column(s) {', '.join(missing)}; expected {','.join(TRIPLET_COLUMNS)}",
                          line=1)
    if len(df) == 0:
        raise SchemaError(source, "no triplets")
    out = df.copy()
    lines = out[LINE].to_numpy() if LINE in out.columns else np.arange(len(out)) + 2
    for col in ("reference", "a", "b"):
        vals = out[col]
        bad = vals.isna() | (vals.astype(str).str.strip() == "")
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise SchemaError(source, "is empty", line=int(lines[i]), field=col)
        out[col] = vals.astype(str).str.strip()
    p = pd.to_numeric(out["p_a"], errors="coerce")
    bad = p.isna() | (p < 0) | (p > 1)
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise SchemaError(source, f"expected a number in [0, 1], got '{show(df['p_a'].iloc[i])}'",
                          line=int(lines[i]), field="p_a")
    out["p_a"] = p.astype(float)
    cols = list(TRIPLET_COLUMNS) + [c for c in out.columns if c not in TRIPLET_COLUMNS and c != LINE]
    return out[cols].reset_index(drop=True)


def read_triplets(path: str | Path) -> pd.DataFrame:
    """Read and validate a canonical ``triplets.csv`` (:data:`~lossarena.data.schemas.TRIPLETS`)."""
    path = Path(path)
    return validate_triplets(read_table(path, TRIPLETS), str(path))


def write_triplets(df: pd.DataFrame, path: str | Path) -> Path:
    """Write the canonical CSV atomically (the four columns, ``p_a`` with enough digits to round-trip)."""
    df = validate_triplets(df)
    return write_table(df, path, TRIPLETS, float_format="%.10g", extras=False)


def _finish(rows: list[tuple[str, str, str, float]], out_csv, source: str) -> pd.DataFrame:
    if not rows:
        raise InputError(f"{source}: no triplets found")
    df = validate_triplets(pd.DataFrame(rows, columns=list(TRIPLET_COLUMNS)), source)
    if out_csv is not None:
        write_triplets(df, out_csv)
    return df


def _rel(path: Path, root: Path) -> str:
    return Path(os.path.relpath(path, root)).as_posix()


# ---------------------------------------------------------------------------------------------
# BAPPS


def _find_bapps_dirs(root: Path) -> list[Path]:
    if (root / "judge").is_dir():
        return [root]
    found = sorted(p.parent for p in root.rglob("judge") if p.is_dir() and (p.parent / "ref").is_dir())
    return found


def bapps_to_triplets(root: str | Path, out_csv: str | Path | None = None, *,
                      images_root: str | Path | None = None) -> pd.DataFrame:
    """BAPPS 2AFC: ``root`` is one ``ref/p0/p1/judge`` folder or any folder above several of them.

    ``judge/<id>.npy`` is the fraction of humans who judged ``p1`` closer to ``ref``; the triplet is
    ``(ref/<id>.png, p0/<id>.png, p1/<id>.png, 1 - judge)``. Paths are relative to ``images_root``
    (default ``root``).
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: not a folder")
    base = Path(images_root) if images_root is not None else root
    dirs = _find_bapps_dirs(root)
    if not dirs:
        raise InputError(f"{root}: no BAPPS 2AFC folder (expected ref/, p0/, p1/, judge/ below it)")
    rows = []
    for d in dirs:
        for sub in ("ref", "p0", "p1"):
            if not (d / sub).is_dir():
                raise InputError(f"{d}: missing folder {sub}/")
        for j in sorted((d / "judge").glob("*.npy")):
            stem = j.stem
            try:  # memory-mapped: a header claiming a huge shape allocates nothing
                v = np.load(j, mmap_mode="r", allow_pickle=False)
                if v.size != 1:
                    raise SchemaError(j, f"expected one fraction in [0, 1], got an array of shape {v.shape}")
                f = float(np.asarray(v, dtype=float).ravel()[0])
            except SchemaError:
                raise
            except (ValueError, OSError, TypeError, EOFError) as e:
                raise SchemaError(j, f"not a readable .npy file ({show(e, 120)})") from None
            if not (0.0 <= f <= 1.0):
                raise SchemaError(j, f"expected one fraction in [0, 1], got {show(f)}")
            v = np.array([f])
            paths = []
            for sub in ("ref", "p0", "p1"):
                cands = sorted((d / sub).glob(stem + ".*"))
                if not cands:
                    raise InputError(f"{d / sub}: no image for judgment {j.name}")
                paths.append(_rel(cands[0], base))
            rows.append((paths[0], paths[1], paths[2], 1.0 - float(v[0])))
    return _finish(rows, out_csv, str(root))


# ---------------------------------------------------------------------------------------------
# CLIC


def clic_to_triplets(oracle_csv: str | Path, out_csv: str | Path | None = None, *,
                     prefix: str = "") -> pd.DataFrame:
    """CLIC perceptual-track ``oracle.csv`` (no header ``O,A,B,T``; ``T = 0``: A preferred).

    One triplet per row with ``p_a = 1 - T``; ``prefix`` is prepended to the file names (e.g. the
    sub-folder that holds the PNGs relative to ``--images``).
    """
    oracle_csv = Path(oracle_csv)
    src = str(oracle_csv)
    raw = read_raw(oracle_csv, source=src, header=False, names=("O", "A", "B", "T"))
    rows = []
    pre = prefix.rstrip("/") + "/" if prefix else ""
    for k, (rec, i) in enumerate(zip(raw.rows, raw.lines)):
        o, a, b, t = (c.strip() for c in rec)
        if t not in ("0", "1"):
            if k == 0 and not t.isdigit():
                continue  # tolerate a header line
            raise SchemaError(src, f"expected 0 or 1, got '{show(t)}'", line=i, field="T")
        for name, v in (("O", o), ("A", a), ("B", b)):
            if not v:
                raise SchemaError(src, "is empty", line=i, field=name)
        rows.append((pre + o, pre + a, pre + b, 1.0 - float(t)))
    return _finish(rows, out_csv, str(oracle_csv))


# ---------------------------------------------------------------------------------------------
# PieAPP


def _pick(cols: dict[str, str], *needles: str, exclude: tuple[str, ...] = ()) -> str | None:
    for norm, orig in cols.items():
        if all(n in norm for n in needles) and not any(x in norm for x in exclude):
            return orig
    return None


def pieapp_to_triplets(root: str | Path, split: str = "test", out_csv: str | Path | None = None, *,
                       images_root: str | Path | None = None) -> pd.DataFrame:
    """PieAPP: ``root/labels/<split>/*_pairwise_labels.csv`` with the images in
    ``reference_images/<split>/`` and ``distorted_images/<split>/<ref stem>/``.

    The label column is the processed probability of preference for A when present (train/val),
    else the (raw) probability of preference for A (test). A reference used as an alternative
    (PieAPP's test set does that) is resolved to ``reference_images``. Paths are relative to
    ``images_root`` (default ``root``).
    """
    root = Path(root)
    pre = "" if images_root is None else _rel(root, Path(images_root)).rstrip("/") + "/"
    pre = "" if pre == "./" else pre
    lab_dir = root / "labels" / split
    files = sorted(lab_dir.glob("*_pairwise_labels.csv"))
    if not files:
        raise InputError(f"{lab_dir}: no *_pairwise_labels.csv files (is {root} the PieAPP dataset folder?)")
    rows = []
    for f in files:
        df = read_table(f).drop(columns=[LINE])
        cols = {c.strip().lower(): c for c in df.columns}
        c_ref = next((orig for norm, orig in cols.items() if norm.startswith("ref")), None)
        c_a = _pick(cols, "image a")
        c_b = _pick(cols, "image b")
        c_p = (_pick(cols, "processed", "for a") or _pick(cols, "preference for a", exclude=("raw",))
               or _pick(cols, "for a"))
        if not all((c_ref, c_a, c_b, c_p)):
            raise InputError(f"{f}: expected columns 'ref. image', 'distorted image A', 'distorted image B' "
                             f"and a probability of preference for A; got {list(df.columns)}")
        for i, r in enumerate(df.itertuples(index=False), start=2):
            rec = dict(zip(df.columns, r))
            ref = str(rec[c_ref]).strip()
            stem = Path(ref).stem
            try:
                p = float(rec[c_p])
            except (TypeError, ValueError):
                raise SchemaError(f, "not a number", line=i, field=c_p.strip()) from None
            if math.isnan(p) or not (0.0 <= p <= 1.0):
                raise SchemaError(f, f"probability {show(p)} outside [0, 1]", line=i, field=c_p.strip())

            def img(name: str, stem=stem, ref=ref) -> str:
                name = name.strip()
                if name == ref or "ref" in Path(name).stem.lower():
                    return f"{pre}reference_images/{split}/{name}"
                return f"{pre}distorted_images/{split}/{stem}/{name}"

            rows.append((f"{pre}reference_images/{split}/{ref}", img(str(rec[c_a])), img(str(rec[c_b])), p))
    return _finish(rows, out_csv, str(lab_dir))


# ---------------------------------------------------------------------------------------------
# the study's own votes


def _key_num(v) -> str:
    """Canonical text for a bitrate group: '0.15' == '0.150' == 0.15; '' for missing."""
    if v is None:
        return ""
    s = str(v).strip()
    if s == "" or s.lower() == "nan":
        return ""
    try:
        return repr(round(float(s), 9))
    except ValueError:
        return s


def votes_to_triplets(votes_csv: str | Path, manifest_csv: str | Path, out_csv: str | Path | None = None, *,
                      images_root: str | Path | None = None, include_reference_pairs: bool = False
                      ) -> pd.DataFrame:
    """The study's votes as triplets: one per (content, group, unordered condition pair).

    ``votes.csv`` and ``manifest.csv`` as defined in :mod:`lossarena.data.schemas` (:data:`VOTES`,
    :data:`MANIFEST`; ties by the one tie rule there, ``count`` honoured; ``group`` is the target
    bitrate); the original is condition :data:`REFERENCE`; the manifest's
    ``path`` is relative to the manifest's folder (or absolute). The stimulus of a vote is looked up
    by ``(content, condition, target_bpp == group)``, or by ``(content, condition)`` when there is
    no group. ``p_a`` = (votes for a + ½ ties) / votes, with ``a`` the alphabetically first
    condition. Pairs in which one side is the reference itself are left out unless
    ``include_reference_pairs``. Output paths are relative to ``images_root`` (default: the
    manifest's folder).
    """
    votes_csv, manifest_csv = Path(votes_csv), Path(manifest_csv)
    base = Path(images_root) if images_root is not None else manifest_csv.parent
    man = read_table(manifest_csv, MANIFEST)
    votes = validate_votes(read_table(votes_csv, VOTES), str(votes_csv))
    msrc = str(manifest_csv)

    # (content, condition, group) -> path ; (content, condition) -> set of paths
    by_group: dict[tuple[str, str, str], str] = {}
    by_cond: dict[tuple[str, str], set[str]] = defaultdict(set)
    for content, cond, tb, path, line in zip(man["content"], man["condition"], man["target_bpp"], man["path"],
                                             man[LINE]):
        full = Path(path) if Path(path).is_absolute() else manifest_csv.parent / path
        try:
            rel = _rel(full, base)
        except ValueError:  # another drive on Windows
            raise SchemaError(msrc, f"'{show(path)}' cannot be made relative to {base}", line=int(line),
                              field="path") from None
        g = _key_num(tb)
        by_group[(content, cond, g)] = rel
        by_cond[(content, cond)].add(rel)

    def lookup(content: str, cond: str, group: str, line: int) -> str:
        if group and (content, cond, group) in by_group:
            return by_group[(content, cond, group)]
        paths = by_cond.get((content, cond))
        if not paths:
            raise SchemaError(votes_csv, f"no stimulus for content '{show(content)}', condition "
                                         f"'{show(cond)}' in {manifest_csv}", line=line)
        if len(paths) > 1:
            raise SchemaError(votes_csv, f"content '{show(content)}', condition '{show(cond)}' has "
                                         f"{len(paths)} stimuli in {manifest_csv} and the vote names no matching "
                                         "group", line=line, field="group")
        return next(iter(paths))

    # aggregate: key (content, group, cond_lo, cond_hi) -> [wins_lo, wins_hi, ties, first line]
    agg: dict[tuple[str, str, str, str], list[float]] = {}
    groups = votes["group"] if "group" in votes.columns else pd.Series("", index=votes.index)
    weights = vote_weights(votes)
    skipped_ref = 0
    for content, ca, cb, w, grp, n, line in zip(votes["content"], votes["condition_a"], votes["condition_b"],
                                                votes["winner"], groups, weights, votes[LINE]):
        if REFERENCE in (ca, cb) and not include_reference_pairs:
            skipped_ref += int(n)
            continue
        line = int(line)
        group = _key_num(grp)
        lo, hi = sorted((ca, cb))
        key = (content, group, lo, hi)
        if key not in agg:
            # resolve the stimuli now so that errors name the first line using them
            agg[key] = [0.0, 0.0, 0.0, float(line)]
            for c in (lo, hi):
                lookup(content, c, group, line)
            lookup(content, REFERENCE, group, line)
        agg[key][2 if w == TIE else 0 if w == lo else 1] += n
    rows = []
    for (content, group, lo, hi), (w_lo, w_hi, ties, line) in agg.items():
        n = w_lo + w_hi + ties
        line = int(line)
        rows.append((lookup(content, REFERENCE, group, line), lookup(content, lo, group, line),
                     lookup(content, hi, group, line), (w_lo + 0.5 * ties) / n))
    if skipped_ref:
        log.info("votes_to_triplets: left out %d vote(s) comparing a stimulus with the reference itself",
                 skipped_ref)
    return _finish(rows, out_csv, str(votes_csv))
