"""JND scale from JPEG AIC-3 triplet comparisons: plain (PTC) and boosted (BTC) responses, one joint fit.

A triplet shows the reference (the pivot) between two test images A and B of the same content; the
observer names the test image that differs **more** from the reference, or answers "not sure". The
model (Testolina et al., DCC 2025, arXiv:2410.09501; Jenadeleh et al., arXiv:2504.06301; ISO/IEC
29170-3) is Thurstone Case V on the distances to the pivot. With the pivot the reference, the distance
of a test image is its impairment ``x >= 0`` (the reference has ``x = 0``), and::

    P(A judged more distorted than B | plain)   = Phi(z75 * (x_A - x_B))
    P(A judged more distorted than B | boosted) = Phi(z75 * (h_g(x_A) - h_g(x_B)))
    h_g(x) = g1 * x + g2 * x**2         (one boosting polynomial per group g: by default content x codec)

``z75 = Phi^-1(0.75)``, so a difference of 1 on the ``x`` scale is answered correctly by 75 % of
observers: ``x`` is in JND units (the papers fit unit-variance differences and divide the scale by
``Phi^-1(0.75)``; the two are the same). "Not sure" counts one half for each side (the AIC-3 papers
split it 1/2 : 1/2). Plain and boosted responses are fitted jointly by maximum likelihood; the boosted
scale values ``h_g(x)`` and the fitted ``(g1, g2)`` are reported beside the plain (JND) scale.

Screening (``screen_batches``): trap triplets (the original against a heavily distorted image) must be
answered correctly; a batch (an assignment, or a participant when the file has no batches) whose trap
score -- the share of its trap triplets answered correctly, "not sure" counting one half -- falls below
a threshold is dropped with all its answers. The threshold is Otsu's between-class split of the batch
scores (``"otsu"``, what the JPEG AI study used; by default one threshold per experiment, plain and
boosted) or a fixed number. Bias triplets (the same image on
both sides) and the left/right balance are reported per batch. Trap and bias triplets never enter
the fit.

Confidence intervals: percentile bootstrap (2.5 %, 97.5 %) over participants (all answers of a
resampled participant come along; default) or, as the AIC-3 papers do, over the answers of each
triplet question (``ci="question"``), every replicate refitted from the full-data fit (warm start).
Images with a known value (anchors of an earlier study) can be held fixed (``fixed=``).

Inputs (:func:`read_responses`):

* the JPEG AIC-3 dataset zip, or one of its ``*_responses_*.csv`` files (``method`` BTC/PTC per row);
  names as ``lossarena analysis convert ... aic3`` writes them: content ``img02``, condition
  ``AVIF_01``, the original ``reference``; batch = ``assignment``;
* lossarena triplet exports: a CSV with ``participant,content,condition_a,condition_b,winner`` where
  ``winner`` is the image **closer to** the reference (the less distorted one; the votes convention)
  or ``tie`` ("not sure"), plus ``boost`` (empty, ``none`` or ``plain`` = a plain triplet, anything
  else such as ``zoom,flicker,amplify`` = boosted) or ``method`` (``PTC``/``BTC``); optional ``batch``,
  ``is_trap``, ``is_bias`` (``0/1/true/false``). The reference must be called ``reference``.
"""

from __future__ import annotations

import logging
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from lossarena.data import schemas
from scipy import optimize, special, stats

from lossarena.errors import InputError

from ._threads import single_thread

log = logging.getLogger(__name__)

Z75 = float(stats.norm.ppf(0.75))  # 0.6744897...: 1 JND = 75 % correct
REFERENCE = schemas.REFERENCE
BOOST_GROUPS = ("auto", "content-codec", "codec", "content", "global")
CI_METHODS = ("participant", "question")  # bootstrap unit: participants (default) or AIC-3's triplet questions
MIN_PLAIN = 200  # plain answers a group needs for its own polynomial in boost_groups="auto"
_AIC3_NAME = re.compile(r"^(?:BTC|PTC)_\d+_(.+)_(\d+)\.png$")
_X_MAX = 15.0  # JND; far above anything compression at "good" quality produces
_G1 = (0.05, 20.0)
_G2 = (-2.0, 5.0)
MONO_MIN = 0.05  # smallest allowed slope h'(x) of a boosting polynomial at any fitted image
MONO_WEIGHT = 1e4


# ---------------------------------------------------------------------------------------------
# reading


def _bool_col(df: pd.DataFrame, col: str, src: str) -> np.ndarray:
    if col not in df.columns:
        return np.zeros(len(df), dtype=bool)
    v = df[col].astype(str).str.strip().str.lower()
    ok = v.isin(["0", "1", "true", "false", "yes", "no", ""])
    if not ok.all():
        i = int(np.flatnonzero(~ok.to_numpy())[0])
        raise InputError(f"{src}: line {schemas.line_of(df, i)}: field '{col}' is '{df[col].iloc[i]}', "
                         "expected 0/1/true/false")
    return v.isin(["1", "true", "yes"]).to_numpy()


def _aic3_names(names: pd.Series, df: pd.DataFrame, col: str, src: str) -> np.ndarray:
    m = names.astype(str).str.strip().str.extract(_AIC3_NAME)
    bad = m[0].isna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(f"{src}: line {schemas.line_of(df, i)}: field '{col}': cannot parse image name "
                         f"'{schemas.show(names.iloc[i])}' (expected <BTC|PTC>_<n>_<codec>_<level>.png)")
    cond = (m[0] + "_" + m[1]).to_numpy(dtype=object)
    return np.where(m[0].to_numpy() == "0ref", REFERENCE, cond)


def _from_aic3(df: pd.DataFrame, src: str) -> pd.DataFrame:
    need = ["worker", "method", "img_num", "img_left", "img_right", "img_pivot", "codec_pivot", "response"]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise InputError(f"{src}: missing column(s) {', '.join(missing)}")
    resp = df["response"].astype(str).str.strip().str.lower().str.replace(" ", "", regex=False)
    ok = resp.isin(["left", "right", "notsure", "skip"])
    if not ok.all():
        i = int(np.flatnonzero(~ok.to_numpy())[0])
        raise InputError(f"{src}: line {schemas.line_of(df, i)}: field 'response' is "
                         f"'{schemas.show(df['response'].iloc[i])}', expected left, right, notsure or skip")
    notref = df["codec_pivot"].astype(str).str.strip() != "0"
    if notref.any():
        i = int(np.flatnonzero(notref.to_numpy())[0])
        raise InputError(f"{src}: line {schemas.line_of(df, i)}: field 'codec_pivot' is "
                         f"'{schemas.show(df['codec_pivot'].iloc[i])}': only triplets with the reference as "
                         "pivot are supported")
    method = df["method"].astype(str).str.strip().str.upper()
    bad = ~method.isin(["BTC", "PTC"])
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(f"{src}: line {schemas.line_of(df, i)}: field 'method' is "
                         f"'{schemas.show(df['method'].iloc[i])}', expected BTC or PTC")
    num = pd.to_numeric(df["img_num"], errors="coerce")
    if num.isna().any():
        i = int(np.flatnonzero(num.isna().to_numpy())[0])
        raise InputError(f"{src}: line {schemas.line_of(df, i)}: field 'img_num' is not a number")
    r = resp.to_numpy()
    y = np.where(r == "left", 1.0, np.where(r == "right", 0.0, 0.5))
    batch = df["assignment"].astype(str).str.strip() if "assignment" in df.columns else None
    participant = method + "-" + df["worker"].astype(str).str.strip()
    out = pd.DataFrame({
        "participant": participant.to_numpy(),
        "batch": (participant + "/" + batch).to_numpy() if batch is not None else participant.to_numpy(),
        "content": ("img" + num.astype(int).astype(str).str.zfill(2)).to_numpy(),
        "condition_a": _aic3_names(df["img_left"], df, "img_left", src),
        "condition_b": _aic3_names(df["img_right"], df, "img_right", src),
        "boosted": (method == "BTC").to_numpy(),
        "y": y,
        "is_trap": _bool_col(df, "is_trap", src),
        "is_bias": _bool_col(df, "is_bias", src),
        "_line": df[schemas.LINE].to_numpy() if schemas.LINE in df.columns else np.arange(len(df)) + 2,
    })
    out["is_bias"] |= out["condition_a"].to_numpy() == out["condition_b"].to_numpy()
    keep = r != "skip"
    out = out[keep].reset_index(drop=True)
    out.attrs["skipped"] = int((~keep).sum())
    return out


def _from_export(df: pd.DataFrame, src: str) -> pd.DataFrame:
    need = ["participant", "content", "condition_a", "condition_b", "winner"]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise InputError(f"{src}: missing column(s) {', '.join(missing)}; a triplet export needs "
                         f"{','.join(need)} and boost or method")
    if "boost" in df.columns:
        b = df["boost"].astype(str).str.strip().str.lower()
        boosted = ~b.isin(["", "none", "plain", "0", "false"])
    elif "method" in df.columns:
        m = df["method"].astype(str).str.strip().str.upper()
        bad = ~m.isin(["BTC", "PTC"])
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise InputError(f"{src}: line {schemas.line_of(df, i)}: field 'method' is "
                             f"'{schemas.show(df['method'].iloc[i])}', expected BTC or PTC")
        boosted = m == "BTC"
    else:
        raise InputError(f"{src}: missing column boost (or method): cannot tell plain from boosted triplets")
    a = df["condition_a"].astype(str).str.strip()
    b_ = df["condition_b"].astype(str).str.strip()
    w = df["winner"].astype(str).str.strip()
    tie = schemas.tie_mask(w)
    ok = tie | (w == a) | (w == b_)
    if not ok.all():
        i = int(np.flatnonzero(~ok.to_numpy())[0])
        raise InputError(f"{src}: line {schemas.line_of(df, i)}: field 'winner' is '{schemas.show(w.iloc[i])}', "
                         f"expected '{schemas.show(a.iloc[i])}', '{schemas.show(b_.iloc[i])}' or 'tie'")
    # the winner is the image closer to the reference: the OTHER side is judged more distorted
    y = np.where(tie, 0.5, np.where(w == b_, 1.0, 0.0))
    part = df["participant"].astype(str).str.strip()
    out = pd.DataFrame({
        "participant": part.to_numpy(),
        "batch": (df["batch"].astype(str).str.strip() if "batch" in df.columns else part).to_numpy(),
        "content": df["content"].astype(str).str.strip().to_numpy(),
        "condition_a": a.to_numpy(),
        "condition_b": b_.to_numpy(),
        "boosted": boosted.to_numpy(),
        "y": y,
        "is_trap": _bool_col(df, "is_trap", src),
        "is_bias": _bool_col(df, "is_bias", src),
        "_line": df[schemas.LINE].to_numpy() if schemas.LINE in df.columns else np.arange(len(df)) + 2,
    })
    out["is_bias"] |= out["condition_a"].to_numpy() == out["condition_b"].to_numpy()
    for c in ("participant", "content", "condition_a", "condition_b"):
        empty = out[c] == ""
        if empty.any():
            i = int(np.flatnonzero(empty.to_numpy())[0])
            raise InputError(f"{src}: line {out['_line'].iloc[i]}: empty field '{c}'")
    return out


def read_responses(path, experiment: str = "both") -> pd.DataFrame:
    """Read triplet responses (AIC-3 zip or responses CSV, or a lossarena triplet export).

    Parameters
    ----------
    path : str or Path
        The file (see the module docstring for the accepted formats).
    experiment : {"both", "btc", "ptc"}
        Zip only: which members to read.

    Returns
    -------
    pandas.DataFrame
        One row per answered triplet: ``participant, batch, content, condition_a, condition_b,
        boosted, y, is_trap, is_bias, _line``; ``y`` = 1 when ``condition_a`` was judged more distorted,
        0 when ``condition_b`` was, 0.5 for "not sure". ``attrs['skipped']`` counts dropped ``skip`` rows.

    Raises
    ------
    InputError
        Unreadable file or a bad row (the message names the file, line and field).
    """
    path = Path(path)
    if experiment not in ("both", "btc", "ptc"):
        raise InputError(f"expected experiment both, btc or ptc, got {experiment!r}")
    if not path.exists():
        raise InputError(f"{path}: no such file")
    frames = []
    if path.suffix.lower() == ".zip":
        try:
            z = zipfile.ZipFile(path)
        except zipfile.BadZipFile as e:
            raise InputError(f"{path}: not a zip file ({e})") from e
        with z:
            members = [i for i in z.infolist() if i.filename.endswith(".csv") and "_responses_" in i.filename]
            if experiment != "both":
                members = [i for i in members if f"_{experiment.upper()}_" in i.filename]
            if not members:
                raise InputError(f"{path}: no *_responses_*.csv member for experiment '{experiment}'")
            cap = schemas.limit("file_bytes")
            for info in sorted(members, key=lambda i: i.filename):
                src = f"{path}!{info.filename}"
                if info.file_size > cap:
                    raise InputError(f"{src}: {info.file_size} bytes uncompressed, over the limit of {cap} "
                                     "(LOSSARENA_MAX_FILE_BYTES)")
                with z.open(info) as f:
                    data = f.read(cap + 1)
                if len(data) > cap:
                    raise InputError(f"{src}: larger than the limit of {cap} bytes (LOSSARENA_MAX_FILE_BYTES)")
                frames.append(_from_aic3(schemas.read_table(src, data=data, source=src), src))
    else:
        df = schemas.read_table(path)
        frames.append(_from_aic3(df, str(path)) if "img_pivot" in df.columns else _from_export(df, str(path)))
    out = pd.concat(frames, ignore_index=True)
    out.attrs["skipped"] = sum(f.attrs.get("skipped", 0) for f in frames)
    out.attrs["source"] = str(path)
    if out.empty:
        raise InputError(f"{path}: no answered triplets")
    return out


# ---------------------------------------------------------------------------------------------
# screening


def otsu_threshold(values) -> float:
    """Otsu's threshold of a 1-D sample: the cut maximising the between-class variance.

    Parameters
    ----------
    values : array_like
        Scores (e.g. per-batch trap accuracies in [0, 1]).

    Returns
    -------
    float
        The cut ``t``: values ``< t`` form the lower class. NaN for fewer than two distinct values.
    """
    v = np.sort(np.asarray(values, dtype=float)[np.isfinite(values)])
    u = np.unique(v)
    if u.size < 2:
        return float("nan")
    cuts = (u[:-1] + u[1:]) / 2
    n = v.size
    k = np.searchsorted(v, cuts)  # number of values below each cut
    csum = np.cumsum(v)
    m0 = csum[k - 1] / k
    m1 = (csum[-1] - csum[k - 1]) / (n - k)
    between = (k / n) * ((n - k) / n) * (m0 - m1) ** 2
    return float(cuts[int(np.argmax(between))])


@dataclass
class Screening:
    """Per-batch screening result (:func:`screen_batches`)."""

    batches: pd.DataFrame
    threshold: float  # the largest of ``thresholds`` (NaN: nothing screened)
    kept: pd.DataFrame = field(repr=False)
    thresholds: dict = field(default_factory=dict)  # per experiment ("plain"/"boosted") or "all"

    def describe(self) -> str:
        """``"0.711"`` or ``"0.711 (plain) / 0.675 (boosted)"``: the trap-score thresholds."""
        if len(self.thresholds) <= 1:
            return f"{self.threshold:.3g}"
        return " / ".join(f"{t:.3g} ({k})" for k, t in self.thresholds.items())


SCREEN_BY = ("experiment", "all")


def screen_batches(responses: pd.DataFrame, trap_min="otsu", by: str = "experiment") -> Screening:
    """Drop unreliable batches by their trap-question score.

    Parameters
    ----------
    responses : pandas.DataFrame
        :func:`read_responses` output.
    trap_min : "otsu", float or None
        Batches whose trap score (share of trap triplets answered correctly, "not sure" = 1/2) is
        below this are dropped; ``"otsu"`` picks Otsu's split of the batch scores; ``None`` keeps all.
        Batches without trap triplets are kept.
    by : {"experiment", "all"}
        With ``trap_min="otsu"``: one Otsu threshold per experiment -- plain (PTC) and boosted (BTC)
        batches separately (default; they are separate crowds with traps of different difficulty, and
        the AIC-3 papers report their screening per experiment) -- or one over all batches.

    Returns
    -------
    Screening
        ``batches``: one row per batch (``batch, participant, n, n_trap, trap_score, n_bias,
        bias_notsure, right_share, experiment, kept``); ``kept``: the responses of kept batches minus trap and
        bias triplets (what the fit uses).
    """
    r = responses
    trap = r["is_trap"].to_numpy()
    bias = r["is_bias"].to_numpy()
    a_ref = r["condition_a"].to_numpy() == REFERENCE
    b_ref = r["condition_b"].to_numpy() == REFERENCE
    y = r["y"].to_numpy()
    # a trap is answered correctly when the non-reference side is named more distorted
    correct = np.where(a_ref, 1.0 - y, np.where(b_ref, y, np.nan))
    if by not in SCREEN_BY:
        raise InputError(f"expected screening by {' or '.join(SCREEN_BY)}, got {by!r}")
    g = r.assign(_trap=trap, _c=np.where(trap, correct, np.nan), _bias=bias,
                 _bns=np.where(bias, (y == 0.5).astype(float), np.nan),
                 _right=np.where(~trap & ~bias & (y != 0.5), (y == 0.0).astype(float), np.nan))
    agg = g.groupby("batch", sort=True).agg(
        participant=("participant", "first"), n=("y", "size"), n_trap=("_trap", "sum"),
        trap_score=("_c", "mean"), n_bias=("_bias", "sum"), bias_notsure=("_bns", "mean"),
        right_share=("_right", "mean"), boosted=("boosted", "mean")).reset_index()
    agg["experiment"] = np.where(agg.pop("boosted") > 0.5, "boosted", "plain")
    if trap_min is None:
        thresholds = {"all": float("nan")}
    elif isinstance(trap_min, str):
        if trap_min != "otsu":
            raise InputError(f"expected trap_min 'otsu', a number or None, got {trap_min!r}")
        if by == "all":
            thresholds = {"all": otsu_threshold(agg["trap_score"].dropna())}
        else:
            thresholds = {e: otsu_threshold(agg.loc[agg["experiment"] == e, "trap_score"].dropna())
                          for e in ("plain", "boosted") if (agg["experiment"] == e).any()}
    else:
        thresholds = {"all": float(trap_min)}
    thr_row = agg["experiment"].map(thresholds) if "all" not in thresholds else pd.Series(
        thresholds["all"], index=agg.index)
    kept = ~(agg["trap_score"] < thr_row.fillna(-np.inf))
    agg["kept"] = kept.to_numpy()
    finite = [t for t in thresholds.values() if np.isfinite(t)]
    thr = max(finite) if finite else float("nan")
    keep_b = set(agg.loc[agg["kept"], "batch"])
    sel = r["batch"].isin(keep_b).to_numpy() & ~trap & ~bias
    out = r[sel].reset_index(drop=True)
    if out.empty:
        raise InputError("no responses left after screening (all batches failed the trap questions)")
    return Screening(agg, thr, out, thresholds)


# ---------------------------------------------------------------------------------------------
# the model


def _codec_of(condition: str) -> str:
    return condition.rsplit("_", 1)[0] if "_" in condition else condition


@dataclass
class _Problem:
    items: pd.DataFrame  # content, condition, codec, group (int)
    groups: list  # group keys
    ia: np.ndarray
    ib: np.ndarray
    boosted: np.ndarray
    pairs: pd.DataFrame  # one row per (participant, pair row) with counts
    n_a: np.ndarray  # aggregated counts over participants
    n_b: np.ndarray
    part_index: np.ndarray  # participant id per pairs row
    row_index: np.ndarray  # pair row per pairs row
    participants: list
    answers: np.ndarray  # per pair row: answers (a named, not sure, b named) -- the per-question bootstrap


def _build(resp: pd.DataFrame, boost_groups: str) -> _Problem:
    if boost_groups not in BOOST_GROUPS:
        raise InputError(f"expected boost_groups in {', '.join(BOOST_GROUPS)}, got {boost_groups!r}")
    r = resp
    conds = pd.concat([r[["content", "condition_a"]].set_axis(["content", "condition"], axis=1),
                       r[["content", "condition_b"]].set_axis(["content", "condition"], axis=1)])
    items = conds[conds["condition"] != REFERENCE].drop_duplicates().sort_values(["content", "condition"])
    items = items.reset_index(drop=True)
    items["codec"] = [_codec_of(c) for c in items["condition"]]
    idx = {(c, k): i for i, (c, k) in enumerate(zip(items["content"], items["condition"]))}

    def index(col):
        return np.array([idx.get((c, k), -1) for c, k in zip(r["content"], r[col])], dtype=np.int64)

    ia, ib = index("condition_a"), index("condition_b")
    key = {"auto": lambda d: list(zip(d["content"], d["codec"])),
           "content-codec": lambda d: list(zip(d["content"], d["codec"])),
           "codec": lambda d: [("*", c) for c in d["codec"]],
           "content": lambda d: [(c, "*") for c in d["content"]],
           "global": lambda d: [("*", "*")] * len(d)}[boost_groups](items)
    if boost_groups == "auto":
        # back off to one polynomial per codec, then one for all, where plain answers are too few
        plain = ~r["boosted"].to_numpy(bool)
        n_item = (np.bincount(ia[plain & (ia >= 0)], minlength=len(items))
                  + np.bincount(ib[plain & (ib >= 0)], minlength=len(items)))
        for level in (lambda k: ("*", k[1]), lambda k: ("*", "*")):
            per = pd.Series(n_item).groupby(pd.Series(key)).transform("sum").to_numpy()
            key = [k if n >= MIN_PLAIN else level(k) for k, n in zip(key, per)]
    groups = list(dict.fromkeys(key))
    items["group"] = [groups.index(k) for k in key]
    y = r["y"].to_numpy(dtype=float)
    d = pd.DataFrame({"p": r["participant"].to_numpy(), "ia": ia, "ib": ib,
                      "boosted": r["boosted"].to_numpy(bool), "na": y, "nb": 1.0 - y,
                      "k1": (y == 1.0).astype(float), "kh": (y == 0.5).astype(float), "k0": (y == 0.0).astype(float)})
    per = d.groupby(["p", "ia", "ib", "boosted"], sort=True)[["na", "nb", "k1", "kh", "k0"]].sum().reset_index()
    rows = per[["ia", "ib", "boosted"]].drop_duplicates().reset_index(drop=True)
    rows["row"] = np.arange(len(rows))
    per = per.merge(rows, on=["ia", "ib", "boosted"], how="left")
    participants = sorted(per["p"].unique())
    pid = {p: i for i, p in enumerate(participants)}
    n_a = np.bincount(per["row"], weights=per["na"], minlength=len(rows))
    n_b = np.bincount(per["row"], weights=per["nb"], minlength=len(rows))
    answers = np.stack([np.bincount(per["row"], weights=per[k], minlength=len(rows)) for k in ("k1", "kh", "k0")],
                       axis=1).round().astype(np.int64)
    return _Problem(items, groups, rows["ia"].to_numpy(), rows["ib"].to_numpy(), rows["boosted"].to_numpy(bool),
                    per, n_a, n_b, per["p"].map(pid).to_numpy(), per["row"].to_numpy(), participants, answers)


class _Objective:
    """Negative log-likelihood of the joint PTC/BTC model and its analytic gradient."""

    def __init__(self, prob: _Problem):
        self.n = len(prob.items)
        self.G = len(prob.groups)
        self.ia, self.ib, self.bo = prob.ia, prob.ib, prob.boosted
        grp = prob.items["group"].to_numpy()
        # items seen boosted: their h must be increasing at x (monotone boosting, enforced by a penalty)
        seen = np.zeros(len(prob.items), dtype=bool)
        seen[self.ia[(self.ia >= 0) & self.bo]] = True
        seen[self.ib[(self.ib >= 0) & self.bo]] = True
        self.mono = np.flatnonzero(seen)
        self.ga = np.where(self.ia >= 0, grp[np.maximum(self.ia, 0)], 0)
        self.gb = np.where(self.ib >= 0, grp[np.maximum(self.ib, 0)], 0)
        self.item_group = grp

    def values(self, theta):
        x = theta[: self.n]
        g1 = theta[self.n: self.n + self.G]
        g2 = theta[self.n + self.G:]
        return x, g1, g2

    def __call__(self, theta, n_a, n_b):
        n, G = self.n, self.G
        x, g1, g2 = self.values(theta)
        xe = np.append(x, 0.0)  # index -1 -> the reference (x = 0)
        xa, xb = xe[self.ia], xe[self.ib]
        bo = self.bo
        ua = np.where(bo, g1[self.ga] * xa + g2[self.ga] * xa * xa, xa)
        ub = np.where(bo, g1[self.gb] * xb + g2[self.gb] * xb * xb, xb)
        d = Z75 * (ua - ub)
        lp, lm = special.log_ndtr(d), special.log_ndtr(-d)
        nll = -(n_a @ lp + n_b @ lm)
        logphi = -0.5 * d * d - 0.5 * np.log(2 * np.pi)
        # d nll / d d
        gd = -(n_a * np.exp(logphi - lp) - n_b * np.exp(logphi - lm)) * Z75
        dua_dx = np.where(bo, g1[self.ga] + 2 * g2[self.ga] * xa, 1.0)
        dub_dx = np.where(bo, g1[self.gb] + 2 * g2[self.gb] * xb, 1.0)
        grad = np.zeros(n + 2 * G)
        ma, mb = self.ia >= 0, self.ib >= 0
        grad[:n] = (np.bincount(self.ia[ma], weights=(gd * dua_dx)[ma], minlength=n)
                    - np.bincount(self.ib[mb], weights=(gd * dub_dx)[mb], minlength=n))
        wa = np.where(bo & ma, gd, 0.0)
        wb = np.where(bo & mb, -gd, 0.0)
        grad[n: n + G] = (np.bincount(self.ga, weights=wa * xa, minlength=G)
                          + np.bincount(self.gb, weights=wb * xb, minlength=G))
        grad[n + G:] = (np.bincount(self.ga, weights=wa * xa * xa, minlength=G)
                        + np.bincount(self.gb, weights=wb * xb * xb, minlength=G))
        # monotonicity: h'(x_i) = g1 + 2 g2 x_i >= MONO_MIN for every boosted item (quadratic penalty)
        i = self.mono
        gi = self.item_group[i]
        slack = np.minimum(g1[gi] + 2 * g2[gi] * x[i] - MONO_MIN, 0.0)
        if slack.any():
            nll += MONO_WEIGHT * float(slack @ slack)
            c = 2 * MONO_WEIGHT * slack
            grad[i] += c * 2 * g2[gi]
            grad[n: n + G] += np.bincount(gi, weights=c, minlength=G)
            grad[n + G:] += np.bincount(gi, weights=c * 2 * x[i], minlength=G)
        return nll, grad


def _init(prob: _Problem) -> np.ndarray:
    """Start: a rough per-item impairment from the share of answers naming it more distorted."""
    n, G = len(prob.items), len(prob.groups)
    tot = prob.n_a + prob.n_b
    w = np.bincount(prob.ia[prob.ia >= 0], weights=(prob.n_a / np.maximum(tot, 1e-9))[prob.ia >= 0], minlength=n)
    w += np.bincount(prob.ib[prob.ib >= 0], weights=(prob.n_b / np.maximum(tot, 1e-9))[prob.ib >= 0], minlength=n)
    c = np.bincount(prob.ia[prob.ia >= 0], minlength=n) + np.bincount(prob.ib[prob.ib >= 0], minlength=n)
    share = w / np.maximum(c, 1)
    x0 = np.clip(2.0 * share, 0.05, 3.0)
    return np.concatenate([x0, np.ones(G), np.zeros(G)])


def _bounds(prob: _Problem, quadratic: bool):
    n, G = len(prob.items), len(prob.groups)
    g2 = _G2 if quadratic else (0.0, 0.0)
    return [(0.0, _X_MAX)] * n + [_G1] * G + [g2] * G


def _minimise(obj, theta0, n_a, n_b, bounds, tol=1e-7, max_iter=3000, scale=None):
    """L-BFGS-B; ``scale`` (per parameter) preconditions: the optimiser works on ``theta / scale``."""
    if scale is None:
        return optimize.minimize(obj, theta0, args=(n_a, n_b), jac=True, method="L-BFGS-B", bounds=bounds,
                                 options={"maxiter": max_iter, "gtol": tol, "ftol": 1e-12, "maxcor": 30})

    def f(z):
        v, g = obj(z * scale, n_a, n_b)
        return v, g * scale

    bd = [(None if lo is None else lo / sc, None if hi is None else hi / sc) for (lo, hi), sc in zip(bounds, scale)]
    res = optimize.minimize(f, theta0 / scale, jac=True, method="L-BFGS-B", bounds=bd,
                            options={"maxiter": max_iter, "gtol": tol, "ftol": 1e-12, "maxcor": 30})
    res.x = res.x * scale
    return res


def _diag_scale(obj, theta, n_a, n_b, bounds) -> np.ndarray:
    """1 / sqrt(diagonal of the Hessian) at ``theta`` (forward differences of the analytic gradient)."""
    _, g0 = obj(theta, n_a, n_b)
    d = np.empty_like(theta)
    for i in range(theta.size):
        lo, hi = bounds[i]
        h = 1e-5 * max(1.0, abs(theta[i]))
        if hi is not None and theta[i] + h > hi:
            h = -h
        t = theta.copy()
        t[i] += h
        d[i] = (obj(t, n_a, n_b)[1][i] - g0[i]) / h
    return 1.0 / np.sqrt(np.clip(d, 1e-2, None))


class _RDObjective:
    """The objective with the images of some (content, codec) curves tied to ``x = exp(a - b * rate)``.

    That is the rate-distortion model ``d(r) = alpha * exp(-beta * r)`` (``a = log alpha``, ``b = beta``)
    of the AIC-3 reconstruction; ``rate`` is the bitrate (or, as a stand-in, minus the distortion level
    for a ladder equally spaced in bitrate). Parameters: the free images' ``x``, the boosting
    polynomials, then ``(a, b)`` per curve.
    """

    def __init__(self, obj: _Objective, curve: np.ndarray, rate: np.ndarray):
        self.obj = obj
        self.n, self.G = obj.n, obj.G
        self.curve, self.rate = curve, rate  # per item: curve index (-1 = free) and rate
        self.free = np.flatnonzero(curve < 0)
        self.tied = np.flatnonzero(curve >= 0)
        self.C = int(curve.max()) + 1 if self.tied.size else 0

    def full(self, th):
        nf, G, C = self.free.size, self.G, self.C
        x = np.empty(self.n)
        x[self.free] = th[:nf]
        a, b = th[nf + 2 * G: nf + 2 * G + C], th[nf + 2 * G + C:]
        c = self.curve[self.tied]
        x[self.tied] = np.exp(a[c] - b[c] * self.rate[self.tied])
        return np.concatenate([x, th[nf: nf + 2 * G]]), x

    def __call__(self, th, n_a, n_b):
        full, x = self.full(th)
        f, g = self.obj(full, n_a, n_b)
        nf, G, C = self.free.size, self.G, self.C
        out = np.empty_like(th)
        out[:nf] = g[self.free]
        out[nf: nf + 2 * G] = g[self.n:]
        c = self.curve[self.tied]
        gx = g[self.tied] * x[self.tied]
        out[nf + 2 * G: nf + 2 * G + C] = np.bincount(c, weights=gx, minlength=C)
        out[nf + 2 * G + C:] = np.bincount(c, weights=-gx * self.rate[self.tied], minlength=C)
        return f, out

    def reduce(self, full_theta, bounds):
        """Start values and bounds of the reduced problem from a free fit."""
        x = np.clip(full_theta[: self.n], 1e-3, None)
        ab = np.zeros((self.C, 2))
        for k in range(self.C):
            i = self.tied[self.curve[self.tied] == k]
            r = self.rate[i]
            if np.ptp(r) > 0:
                slope, icpt = np.polyfit(r, np.log(x[i]), 1)
                ab[k] = icpt, -slope
            else:
                ab[k] = np.log(x[i]).mean(), 0.0
        th = np.concatenate([full_theta[self.free], full_theta[self.n:], ab[:, 0], ab[:, 1]])
        bd = ([bounds[i] for i in self.free] + list(bounds[self.n:]) + [(-12.0, np.log(_X_MAX))] * self.C
              + [(None, None)] * self.C)
        return th, bd


def _curves(prob: _Problem, rates) -> tuple[np.ndarray, np.ndarray, list]:
    """Curve index per item (-1: free) and its rate, from ``rates``: (content, condition) -> rate."""
    it = prob.items
    r = np.array([rates.get((c, k), np.nan) for c, k in zip(it["content"], it["condition"])], dtype=float)
    keys = list(zip(it["content"], it["codec"]))
    cur = np.full(len(it), -1)
    names: list = []
    for i, (key, ri) in enumerate(zip(keys, r)):
        if np.isfinite(ri):
            if key not in names:
                names.append(key)
            cur[i] = names.index(key)
    # a curve needs 2 images with different rates
    for k in range(len(names)):
        sel = cur == k
        if sel.sum() < 2 or np.ptp(r[sel]) == 0:
            cur[sel] = -1
    used = sorted(set(cur[cur >= 0]))
    remap = {old: new for new, old in enumerate(used)}
    cur = np.array([remap.get(c, -1) for c in cur])
    return cur, np.nan_to_num(r), [names[u] for u in used]


@dataclass
class JNDFit:
    """Result of :func:`fit_jnd`."""

    scale: pd.DataFrame  # content, condition, codec, jnd, ci_low, ci_high, boosted_value, boost_group, n
    boosting: pd.DataFrame  # boost_group, content, codec, gamma1, gamma2, n_plain, n_boosted
    screening: Screening
    info: dict
    samples: np.ndarray | None = field(default=None, repr=False)  # bootstrap replicates of ``jnd``


def _group_table(prob: _Problem, g1, g2, boost_groups) -> pd.DataFrame:
    it = prob.items
    rows = []
    plain = np.zeros(len(prob.groups))
    boosted = np.zeros(len(prob.groups))
    tot = prob.n_a + prob.n_b
    grp = it["group"].to_numpy()
    for side in (prob.ia, prob.ib):
        m = side >= 0
        plain += np.bincount(grp[side[m]], weights=(tot * ~prob.boosted)[m], minlength=len(prob.groups))
        boosted += np.bincount(grp[side[m]], weights=(tot * prob.boosted)[m], minlength=len(prob.groups))
    for k, key in enumerate(prob.groups):
        content, codec = key
        rows.append({"boost_group": k, "content": content, "codec": codec, "gamma1": g1[k], "gamma2": g2[k],
                     "n_plain": plain[k], "n_boosted": boosted[k]})
    return pd.DataFrame(rows)


@single_thread
def fit_jnd(responses: pd.DataFrame, *, trap_min="otsu", boost_groups: str = "auto",
            quadratic: bool = True, bootstrap: int = 200, seed: int = 0, alpha: float = 0.05, ci: str = "participant",
            with_reference: bool = True, rates=None, fixed=None, screen_by: str = "experiment",
            progress: bool = False) -> JNDFit:
    """Reconstruct the JND scale from plain and boosted triplet responses (joint maximum likelihood).

    Parameters
    ----------
    responses : pandas.DataFrame
        :func:`read_responses` output.
    trap_min : "otsu", float or None
        Batch screening threshold on the trap score (see :func:`screen_batches`).
    boost_groups : {"auto", "content-codec", "codec", "content", "global"}
        Which images share one boosting polynomial ``h(x) = g1 x + g2 x^2``. ``"content-codec"``: one
        per source and codec, as AIC-3. A group without plain answers cannot fix its polynomial (only
        ``h(x)`` is identified), so ``"auto"`` (default) starts from content-codec and merges groups
        with fewer than :data:`MIN_PLAIN` plain answers into one polynomial per codec, then into one
        shared by all (the fit warns about groups that still have none).
    with_reference : bool
        Keep (default) the triplets in which the reference itself is one of the two test images.
    rates : dict or pandas.DataFrame, optional
        Rate-distortion curves: ``{(content, condition): rate}`` (or a frame with ``content, condition,
        rate``). The images of every (content, codec) with at least two rates are tied to
        ``jnd = alpha * exp(-beta * rate)`` (AIC-3's RD model, ``alpha, beta`` fitted per curve) instead
        of one free value each. ``rate`` is the bitrate; :func:`level_rates` gives minus the distortion
        level, a stand-in for a ladder equally spaced in bitrate.
    quadratic : bool
        ``False`` fits a linear boosting ``h(x) = g1 x``.
    bootstrap : int
        Bootstrap replicates over participants for the CIs (0 = no CIs).
    seed : int
        Seed of the bootstrap.
    alpha : float
        1 - the CI level (default 0.05: 95 % CIs).
    fixed : dict or pandas.DataFrame, optional
        Images whose scale value is known and held fixed (anchors from an earlier study):
        ``{(content, condition): jnd}`` or a frame with ``content, condition, jnd`` (a ``jnd.csv``).
        Their CIs are the fixed value; images not in the responses are ignored.
    screen_by : {"experiment", "all"}
        Otsu screening per experiment (plain and boosted batches separately; default) or over all
        batches (see :func:`screen_batches`).
    ci : {"participant", "question"}
        The bootstrap's resampling unit: ``"participant"`` (default; all answers of a drawn participant
        come along, so the CIs include the between-participant variance) or ``"question"`` (the answers
        to each triplet question resampled with replacement, as the AIC-3 papers do; narrower).
    progress : bool
        Show a tqdm progress bar over the bootstrap.

    Returns
    -------
    JNDFit
        ``scale``: one row per (content, condition): ``jnd`` (plain scale, JND units, >= 0, the
        reference is 0 and not listed), ``ci_low``/``ci_high``, ``boosted_value`` = ``h(jnd)``;
        ``boosting``: the fitted ``gamma1, gamma2`` per group; ``info``: counts and the optimiser state.

    Raises
    ------
    InputError
        No usable responses, or a bad option.
    """
    if not (0 < alpha < 1):
        raise InputError(f"expected 0 < alpha < 1, got {alpha}")
    if bootstrap < 0:
        raise InputError(f"expected bootstrap >= 0, got {bootstrap}")
    if ci not in CI_METHODS:
        raise InputError(f"expected ci in {', '.join(CI_METHODS)}, got {ci!r}")
    scr = screen_batches(responses, trap_min, by=screen_by)
    kept = scr.kept
    if not with_reference:
        kept = kept[(kept["condition_a"] != REFERENCE) & (kept["condition_b"] != REFERENCE)]
    prob = _build(kept, boost_groups)
    obj = _Objective(prob)
    bounds = _bounds(prob, quadratic)
    theta0 = _init(prob)
    if fixed is not None:
        if isinstance(fixed, pd.DataFrame):
            fixed = {(c, k): float(v) for c, k, v in zip(fixed["content"], fixed["condition"], fixed["jnd"])}
        it_ = prob.items
        for i, key in enumerate(zip(it_["content"], it_["condition"])):
            if key in fixed:
                v = float(fixed[key])
                if not (0.0 <= v <= _X_MAX):
                    raise InputError(f"fixed value of {key[0]}/{key[1]}: expected 0 <= jnd <= {_X_MAX}, got {v}")
                bounds[i] = (v, v)
                theta0[i] = v
        if rates is not None:  # a fixed image is not on a fitted RD curve
            rates = {k: v for k, v in (rates.items() if isinstance(rates, dict) else
                                       {(c, k): float(r) for c, k, r in zip(rates["content"], rates["condition"],
                                                                            rates["rate"])}.items())
                     if k not in fixed}
    res = _minimise(obj, theta0, prob.n_a, prob.n_b, bounds)
    fobj: _Objective | _RDObjective = obj
    fbounds, rd = bounds, None
    curve_names: list = []

    def to_full(th):
        return th if rd is None else rd.full(th)[0]

    if rates is not None:
        if isinstance(rates, pd.DataFrame):
            rates = {(c, k): float(r) for c, k, r in zip(rates["content"], rates["condition"], rates["rate"])}
        cur, rate, curve_names = _curves(prob, rates)
        if curve_names:
            rd = _RDObjective(obj, cur, rate)
            th0, fbounds = rd.reduce(res.x, bounds)
            fobj = rd
            res = _minimise(rd, th0, prob.n_a, prob.n_b, fbounds)
    # precondition with the Hessian diagonal at the estimate, polish, and reuse it for the bootstrap
    scale = _diag_scale(fobj, res.x, prob.n_a, prob.n_b, fbounds)
    res = _minimise(fobj, res.x, prob.n_a, prob.n_b, fbounds, scale=scale)
    if not res.success:
        log.warning("JND fit: optimiser stopped: %s", res.message)
    theta = res.x
    x, g1, g2 = obj.values(to_full(theta))
    gt = _group_table(prob, g1, g2, boost_groups)
    nodata = gt["n_plain"] == 0
    if nodata.any():
        log.warning("JND fit: %d boosting group(s) have no plain answers; their scale is fixed by the "
                    "bounds only -- use a coarser --boost-groups", int(nodata.sum()))
    lo = hi = np.full(len(x), np.nan)
    samples = None
    if bootstrap:
        rng = np.random.default_rng(seed)
        P = len(prob.participants)
        samples = np.empty((bootstrap, len(x)))
        it = range(bootstrap)
        if progress:
            from tqdm import tqdm

            it = tqdm(it, desc="bootstrap", unit="fit")
        na_p = prob.pairs["na"].to_numpy()
        nb_p = prob.pairs["nb"].to_numpy()
        R = len(prob.n_a)
        k = prob.answers
        k_n = k.sum(axis=1)
        k_p = k / np.maximum(k_n, 1)[:, None]
        k_p[k_n == 0] = (0.0, 1.0, 0.0)
        for b in it:
            if ci == "question":
                # AIC-3: the answers to each triplet question resampled with replacement
                draw = rng.multinomial(k_n, k_p)
                n_a = draw[:, 0] + 0.5 * draw[:, 1]
                n_b = draw[:, 2] + 0.5 * draw[:, 1]
            else:
                w = np.bincount(rng.integers(0, P, P), minlength=P).astype(float)
                wr = w[prob.part_index]
                n_a = np.bincount(prob.row_index, weights=wr * na_p, minlength=R)
                n_b = np.bincount(prob.row_index, weights=wr * nb_p, minlength=R)
            rb = _minimise(fobj, theta, n_a, n_b, fbounds, tol=1e-6, scale=scale)
            samples[b] = to_full(rb.x)[: len(x)]
        lo, hi = np.quantile(samples, [alpha / 2, 1 - alpha / 2], axis=0)
    it = prob.items
    grp = it["group"].to_numpy()
    tot = prob.n_a + prob.n_b
    n_item = np.zeros(len(x))
    for side in (prob.ia, prob.ib):
        m = side >= 0
        n_item += np.bincount(side[m], weights=tot[m], minlength=len(x))
    scale = pd.DataFrame({
        "content": it["content"].to_numpy(), "condition": it["condition"].to_numpy(), "jnd": x,
        "ci_low": lo, "ci_high": hi, "boosted_value": g1[grp] * x + g2[grp] * x * x,
        "codec": it["codec"].to_numpy(), "boost_group": grp, "n": n_item,
    })
    info = {"nll": float(res.fun), "converged": bool(res.success), "nit": int(res.nit),
            "responses": int(len(responses)), "used": int(len(scr.kept)),
            "participants": len(prob.participants), "batches": int(len(scr.batches)),
            "batches_dropped": int((~scr.batches["kept"]).sum()), "trap_threshold": scr.threshold, "trap_thresholds": scr.thresholds,
            "screening": scr.describe(), "fixed": 0 if fixed is None else int(sum(
                k in fixed for k in zip(prob.items["content"], prob.items["condition"]))),
            "skipped": int(responses.attrs.get("skipped", 0)), "bootstrap": bootstrap, "seed": seed, "ci": ci,
            "boost_groups": boost_groups, "quadratic": quadratic, "rd_curves": curve_names}
    return JNDFit(scale, gt, scr, info, samples)


# ---------------------------------------------------------------------------------------------
# output


def write_jnd(fit: JNDFit, out) -> tuple[Path, Path]:
    """Write ``jnd.csv`` and its side file ``<stem>_boosting.csv``.

    Parameters
    ----------
    fit : JNDFit
        :func:`fit_jnd` output.
    out : str or Path
        The ``jnd.csv`` path.

    Returns
    -------
    (Path, Path)
        ``jnd.csv`` (``content,condition,jnd,ci_low,ci_high``; :data:`lossarena.data.schemas.JND`) and
        the side file (``content,condition,codec,boost_group,boosted_value,gamma1,gamma2,n_plain,
        n_boosted``: the boosted-scale value ``h(jnd)`` of every image and the fitted rescaling
        parameters of its group; :data:`lossarena.data.schemas.JND_BOOSTING`).
    """
    out = Path(out)
    s = fit.scale
    main = schemas.write_table(s[["content", "condition", "jnd", "ci_low", "ci_high"]], out, schemas.JND,
                               float_format="%.6g")
    side = s[["content", "condition", "codec", "boost_group", "boosted_value"]].merge(
        fit.boosting[["boost_group", "gamma1", "gamma2", "n_plain", "n_boosted"]], on="boost_group", how="left")
    side_path = out.with_name(out.stem + "_boosting.csv")
    schemas.write_table(side, side_path, schemas.JND_BOOSTING, float_format="%.6g")
    return main, side_path


def read_jnd(path) -> pd.DataFrame:
    """Read a ``jnd.csv`` (:data:`lossarena.data.schemas.JND`); raises InputError naming file and line."""
    return schemas.read_table(path, schemas.JND)


_LEVEL = re.compile(r"^(.*)_(\d+)$")


def split_condition(condition: str) -> tuple[str, float]:
    """``"AVIF_03"`` -> ``("AVIF", 3.0)``; a name without a numeric suffix -> ``(name, nan)``."""
    m = _LEVEL.match(condition)
    return (m.group(1), float(m.group(2))) if m else (condition, float("nan"))


def plot_jnd(scale: pd.DataFrame, path, published: pd.DataFrame | None = None) -> Path:
    """One panel per content: JND against the distortion level, a line per codec, 95 % CI bars.

    Parameters
    ----------
    scale : pandas.DataFrame
        ``content, condition, jnd, ci_low, ci_high`` (a ``jnd.csv``).
    path : str or Path
        The PNG to write.
    published : pandas.DataFrame, optional
        Same columns; drawn as open markers for comparison (e.g. a published reconstruction).

    Returns
    -------
    Path
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = scale.copy()
    parts = [split_condition(c) for c in s["condition"]]
    s["codec"] = [p[0] for p in parts]
    s["level"] = [p[1] for p in parts]
    contents = sorted(s["content"].unique())
    codecs = sorted(s["codec"].unique())
    colors = {c: plt.cm.tab10(i % 10) for i, c in enumerate(codecs)}
    ncol = min(3, len(contents))
    nrow = int(np.ceil(len(contents) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.3 * nrow), squeeze=False, sharey=True)
    for ax, content in zip(axes.ravel(), contents):
        for codec in codecs:
            g = s[(s["content"] == content) & (s["codec"] == codec)].sort_values("level")
            if g.empty:
                continue
            err = None
            if g["ci_low"].notna().all():
                err = np.vstack([g["jnd"] - g["ci_low"], g["ci_high"] - g["jnd"]]).clip(0)
            ax.errorbar(g["level"], g["jnd"], yerr=err, marker="o", ms=3, lw=1, capsize=2, color=colors[codec],
                        label=codec)
            if published is not None:
                pb = published[published["content"] == content]
                pb = pb[pb["condition"].isin(g["condition"])]
                if not pb.empty:
                    lv = [split_condition(c)[1] for c in pb["condition"]]
                    ax.plot(lv, pb["jnd"], ls="none", marker="s", mfc="none", ms=5, color=colors[codec])
        ax.set_title(content)
        ax.set_xlabel("distortion level")
        ax.grid(alpha=0.3)
    for ax in axes[:, 0]:
        ax.set_ylabel("impairment (JND)")
    for ax in axes.ravel()[len(contents):]:
        ax.axis("off")
    axes.ravel()[0].legend(fontsize=7)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def report_section(scale: pd.DataFrame, out_dir, published: pd.DataFrame | None = None) -> str:
    """The JND section of the analysis HTML report: the plot and a table, with captions.

    Parameters
    ----------
    scale : pandas.DataFrame
        A ``jnd.csv`` table.
    out_dir : str or Path
        The report folder (the figure is written to ``out_dir/figures/jnd.png``).
    published : pandas.DataFrame, optional
        A second ``jnd.csv`` drawn as open squares (e.g. the published reconstruction).

    Returns
    -------
    str
        An HTML fragment.
    """
    import html

    plot_jnd(scale, Path(out_dir) / "figures" / "jnd.png", published)
    t = scale[["content", "condition", "jnd", "ci_low", "ci_high"]].copy()
    rows = "".join(
        f"<tr><td>{html.escape(str(r.content))}</td><td>{html.escape(str(r.condition))}</td>"
        f"<td>{r.jnd:.3f}</td><td>{r.ci_low:.3f}</td><td>{r.ci_high:.3f}</td></tr>" for r in t.itertuples())
    cap = ("Impairment of each test image in JND units (Thurstonian triplet model with the reference as pivot, "
           "plain and boosted answers fitted jointly; 0 = the reference, 1 JND = 75 % of observers see the "
           "difference), one panel per source image, one line per codec against its distortion level; bars: "
           "95 % bootstrap CIs over participants.")
    if published is not None:
        cap += " Open squares: the comparison scale (e.g. a published reconstruction)."
    return (f"<h2 id='jnd'>JND scale</h2><figure><img src='figures/jnd.png' alt='JND per source, codec and level'>"
            f"<figcaption>{html.escape(cap)}</figcaption></figure>"
            "<details><summary>JND table</summary><table><tr><th>content</th><th>condition</th><th>JND</th>"
            f"<th>CI low</th><th>CI high</th></tr>{rows}</table></details>")


def write_jnd_report(scale: pd.DataFrame, out_dir, fit: JNDFit | None = None, title: str | None = None,
                     published: pd.DataFrame | None = None) -> Path:
    """A stand-alone HTML page (``out_dir/index.html``) with the JND section and the fit's summary.

    Parameters
    ----------
    scale : pandas.DataFrame
        A ``jnd.csv`` table.
    out_dir : str or Path
        Output folder.
    fit : JNDFit, optional
        Adds the screening counts and the boosting polynomials.
    title : str, optional
        Page title.
    published : pandas.DataFrame, optional
        A second ``jnd.csv`` drawn for comparison.

    Returns
    -------
    Path
        ``index.html``.
    """
    import html

    from lossarena.html import write_page

    out_dir = Path(out_dir)
    parts = []
    if fit is not None:
        i = fit.info
        parts.append(f"<p>{i['used']} of {i['responses']} answered triplets used ({i['participants']} participants); "
                     f"{i['batches_dropped']} of {i['batches']} batches dropped by the trap screen (score &lt; "
                     f"{i['screening']}); trap and bias triplets are not fitted. {i['bootstrap']} bootstrap "
                     f"replicates over {'triplet questions' if i.get('ci') == 'question' else 'participants'} "
                     f"(seed {i['seed']}).</p>")
        b = fit.boosting
        rows = "".join(f"<tr><td>{html.escape(str(r.content))}</td><td>{html.escape(str(r.codec))}</td>"
                       f"<td>{r.gamma1:.3f}</td><td>{r.gamma2:.3f}</td><td>{r.n_plain:.0f}</td><td>{r.n_boosted:.0f}</td>"
                       "</tr>" for r in b.itertuples())
        parts.append("<p>Boosting rescaling h(x) = gamma1 x + gamma2 x^2 per group (* = shared):</p><table><tr>"
                     "<th>content</th><th>codec</th><th>gamma1</th><th>gamma2</th><th>plain answers</th>"
                     f"<th>boosted answers</th></tr>{rows}</table>")
    parts.insert(0, report_section(scale, out_dir, published))
    index = out_dir / "index.html"
    write_page(index, title or "JND scale", parts)
    return index


def level_rates(responses: pd.DataFrame, codecs) -> dict:
    """Stand-in rates for :func:`fit_jnd`'s RD curves: ``-level`` for every image of the given codecs.

    Use only for a ladder whose levels are equally spaced in bitrate (then ``alpha * exp(-beta * r)``
    is exponential in the level); give real bitrates otherwise.
    """
    codecs = set(codecs)
    out = {}
    for col in ("condition_a", "condition_b"):
        for c, k in zip(responses["content"], responses[col]):
            codec, lvl = split_condition(k)
            if codec in codecs and np.isfinite(lvl):
                out[(c, k)] = -lvl
    return out
