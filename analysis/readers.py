"""Readers that turn published pairwise-comparison data into canonical votes (see :mod:`.votes`).

Every reader returns a validated votes DataFrame (``participant, content, condition_a, condition_b,
winner`` + extras) and raises :class:`~lossarena.errors.InputError` naming the file and line of a bad
row. :func:`read_any` picks a reader by name or by sniffing the file; ``lossarena analysis convert``
exposes them on the command line.

Formats (names for ``--format``):

``votes``        the canonical CSV.
``pwcmp``        pwcmp's long table ``observer, scene, condition_A, condition_B, is_A_selected``
                 (2025 naming; 1 = condition_A chosen).
``pwcmp-2022``   pwcmp's older ``condition_1, condition_2, selection``. Orientation: in the corrected
                 data ``selection = 1 - is_A_selected``, i.e. 1 means condition_2 was chosen -- the
                 default ``selection_means="condition_2"``. pwcmp's 2022 reference output (and its
                 ``pw_scale_table``) read the column the other way; pass ``selection_means="condition_1"``
                 to reproduce those numbers (see the shared data's SOURCE.txt).
``pwcmp-lf``     pwcmp's light-field example: ``observer, scene, dist_type1, dist_level1, dist_type2,
                 dist_level2, selected`` (1 or 2); conditions are ``<type>_<level>``.
``hdr-vdc``      HDR-VDC raw trials ``observer, scene, condition_1, condition_2, selection``
                 (1 = condition_1 chosen); ``group`` = the display (bright/dim) from the condition name.
``aic3``         JPEG AIC-3 triplet responses (the dataset zip or one responses CSV). Every triplet's pivot is
                 the reference, so a triplet is a pair judged against the reference. ``response`` names the
                 image that looks MORE distorted, so the winner is the other one; ``notsure`` is a tie,
                 ``skip`` and triplets with two identical sides (bias checks) are dropped. Conditions are
                 ``<codec>_<level>`` from the file names (the original is ``reference``), content
                 ``img<NN>``, participant ``<BTC|PTC>-<worker>``; flags, response time and display
                 resolution are kept as extra columns.
``sureal-pc``    Netflix sureal paired-comparison dataset (JSON export): ``dis_videos[i].os`` =
                 [{subject, other_asset_id, count}], count = number of times stimulus i was preferred
                 over ``other_asset_id`` (0.5 = a tie). Content = the reference's ``content_name``.
``counts``       a count matrix: ``.mat`` (every square numeric variable is one content; the name minus
                 a ``pwc_mat_`` prefix) or ``.csv`` (header row and first column = condition names).
                 ``M[i, j]`` = times i was preferred over j; the participant is ``pooled`` (count matrices
                 carry no observer, so outlier screening does not apply).
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from lossarena.errors import InputError, did_you_mean

from .votes import TIE, find_duplicates, prepare_votes, read_votes

FORMATS: dict[str, tuple[Callable, str]] = {}


def _register(name: str, help_: str):
    def deco(fn):
        FORMATS[name] = (fn, help_)
        return fn

    return deco


def _read_csv(path: Path, src: str | None = None, data: bytes | None = None) -> pd.DataFrame:
    src = src or str(path)
    try:
        if data is not None:
            return pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False)
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise InputError(f"{src}: cannot parse as CSV: {e}") from e
    except pd.errors.EmptyDataError as e:
        raise InputError(f"{src}: empty file") from e
    except FileNotFoundError as e:
        raise InputError(f"{src}: no such file") from e


def _need(df: pd.DataFrame, cols, src: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise InputError(f"{src}: missing column(s) {', '.join(missing)} (found: {', '.join(df.columns)})")


def _check_values(df: pd.DataFrame, col: str, allowed, src: str) -> None:
    bad = ~df[col].str.strip().isin(allowed)
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(
            f"{src}: line {i + 2}: field '{col}' is '{df[col].iloc[i]}', expected one of {', '.join(allowed)}"
        )


def _lines(df: pd.DataFrame) -> np.ndarray:
    return np.arange(len(df)) + 2


@_register("votes", "canonical votes CSV (participant,content,condition_a,condition_b,winner[,group,...])")
def read_canonical(path, **kw) -> pd.DataFrame:
    return read_votes(path, duplicates=kw.get("duplicates", "keep-all"))


@_register("pwcmp", "pwcmp long table with is_A_selected (1 = condition_A chosen)")
def read_pwcmp(path, duplicates: str = "keep-all", **_) -> pd.DataFrame:
    path = Path(path)
    df = _read_csv(path)
    src = str(path)
    _need(df, ["observer", "scene", "condition_A", "condition_B", "is_A_selected"], src)
    _check_values(df, "is_A_selected", ["0", "1"], src)
    a_sel = df["is_A_selected"].str.strip() == "1"
    out = pd.DataFrame(
        {
            "participant": df["observer"],
            "content": df["scene"],
            "condition_a": df["condition_A"],
            "condition_b": df["condition_B"],
            "winner": np.where(a_sel, df["condition_A"], df["condition_B"]),
        }
    )
    for extra in ("session_id", "criterion"):
        if extra in df.columns:
            out[extra] = df[extra]
    out["_line"] = _lines(df)
    return prepare_votes(out, src, duplicates)


@_register("pwcmp-2022", "pwcmp's older condition_1,condition_2,selection table (see selection_means)")
def read_pwcmp_2022(path, selection_means: str = "condition_2", duplicates: str = "keep-all", **_) -> pd.DataFrame:
    path = Path(path)
    df = _read_csv(path)
    src = str(path)
    _need(df, ["observer", "scene", "condition_1", "condition_2", "selection"], src)
    return _selection_table(df, src, selection_means, duplicates, group=None)


def _selection_table(df, src, selection_means, duplicates, group):
    if selection_means not in ("condition_1", "condition_2"):
        raise InputError(f"selection_means must be condition_1 or condition_2, not '{selection_means}'")
    _check_values(df, "selection", ["0", "1"], src)
    one = df["selection"].str.strip() == "1"
    first_chosen = one if selection_means == "condition_1" else ~one
    out = pd.DataFrame(
        {
            "participant": df["observer"],
            "content": df["scene"],
            "condition_a": df["condition_1"],
            "condition_b": df["condition_2"],
            "winner": np.where(first_chosen, df["condition_1"], df["condition_2"]),
        }
    )
    if group is not None:
        out["group"] = group
    for extra in ("session_id", "criterion"):
        if extra in df.columns:
            out[extra] = df[extra]
    out["_line"] = _lines(df)
    return prepare_votes(out, src, duplicates)


@_register("hdr-vdc", "HDR-VDC raw trials: observer,scene,condition_1,condition_2,selection (1 = condition_1)")
def read_hdr_vdc(path, duplicates: str = "keep-all", **_) -> pd.DataFrame:
    """One HDR-VDC experiment CSV, or a folder with both (bright and dim) files."""
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*_display_experiment_data.csv"))
        if not files:
            raise InputError(f"{path}: no *_display_experiment_data.csv files")
        parts = [read_hdr_vdc(f, duplicates) for f in files]
        out = pd.concat(parts, ignore_index=True)
        out.attrs.update(parts[0].attrs)
        out.attrs["duplicates"] = find_duplicates(out)
        out.attrs["source"] = str(path)
        return out
    df = _read_csv(path)
    src = str(path)
    _need(df, ["observer", "scene", "condition_1", "condition_2", "selection"], src)
    # group = the display luminance named in the conditions (H_1920x1080_bright_near -> bright)
    lum = df["condition_1"].str.split("_").str[2].fillna("")
    return _selection_table(df, src, "condition_1", duplicates, group=lum.to_numpy())


@_register("pwcmp-lf", "pwcmp light-field example: dist_type/level 1 and 2, selected (1|2)")
def read_pwcmp_lf(path, duplicates: str = "keep-all", **_) -> pd.DataFrame:
    path = Path(path)
    df = _read_csv(path)
    src = str(path)
    _need(df, ["observer", "scene", "dist_type1", "dist_level1", "dist_type2", "dist_level2", "selected"], src)
    _check_values(df, "selected", ["1", "2"], src)
    c1 = df["dist_type1"].str.strip() + "_" + df["dist_level1"].str.strip()
    c2 = df["dist_type2"].str.strip() + "_" + df["dist_level2"].str.strip()
    out = pd.DataFrame(
        {
            "participant": df["observer"],
            "content": df["scene"],
            "condition_a": c1,
            "condition_b": c2,
            "winner": np.where(df["selected"].str.strip() == "1", c1, c2),
        }
    )
    if "session" in df.columns:
        out["session"] = df["session"]
    out["_line"] = _lines(df)
    return prepare_votes(out, src, duplicates)


_AIC3_NAME = re.compile(r"^(?:BTC|PTC)_\d+_(.+)_(\d+)\.png$")


def _aic3_condition(names: pd.Series, src: str) -> np.ndarray:
    m = names.str.extract(_AIC3_NAME)
    bad = m[0].isna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(f"{src}: line {i + 2}: cannot parse image name '{names.iloc[i]}'")
    cond = m[0] + "_" + m[1]
    return np.where(m[0] == "0ref", "reference", cond)


def _read_aic3_frame(df: pd.DataFrame, src: str) -> pd.DataFrame:
    need = ["worker", "method", "img_num", "img_left", "img_right", "img_pivot", "codec_pivot", "response"]
    _need(df, need, src)
    _check_values(df, "response", ["left", "right", "notsure", "skip"], src)
    notref = df["codec_pivot"].str.strip() != "0"
    if notref.any():
        i = int(np.flatnonzero(notref.to_numpy())[0])
        raise InputError(f"{src}: line {i + 2}: pivot is not the reference (codec_pivot={df['codec_pivot'].iloc[i]})")
    left = _aic3_condition(df["img_left"], src)
    right = _aic3_condition(df["img_right"], src)
    resp = df["response"].str.strip().to_numpy()
    # the response names the image that differs MORE from the reference: the other one wins
    winner = np.where(resp == "left", right, np.where(resp == "right", left, TIE))
    out = pd.DataFrame(
        {
            "participant": df["method"].str.strip() + "-" + df["worker"].str.strip(),
            "content": "img" + df["img_num"].str.strip().str.zfill(2),
            "condition_a": left,
            "condition_b": right,
            "winner": winner,
        }
    )
    if "response_time" in df.columns:
        out["response_time_ms"] = pd.to_numeric(df["response_time"], errors="coerce")
    if "submission_time" in df.columns:
        out["timestamp"] = df["submission_time"]
    for extra in ("method", "is_trap", "is_same", "is_cross", "is_bias", "resolution", "response"):
        if extra in df.columns:
            out["aic3_" + extra if extra == "response" else extra] = df[extra]
    out["_line"] = _lines(df)
    keep = (resp != "skip") & (left != right)
    dropped = {"skip": int((resp == "skip").sum()), "identical_sides": int(((resp != "skip") & (left == right)).sum())}
    out = out[keep]
    out.attrs["dropped"] = dropped
    return out


@_register("aic3", "JPEG AIC-3 triplet responses (zip or responses CSV); pairs judged against the reference")
def read_aic3(path, experiment: str = "both", duplicates: str = "keep-all", **_) -> pd.DataFrame:
    """``experiment``: ``btc``, ``ptc`` or ``both`` (only for the zip)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    frames = []
    if path.suffix.lower() == ".zip":
        with zipfile.ZipFile(path) as z:
            members = [n for n in z.namelist() if n.endswith(".csv") and "_responses_" in n]
            if experiment != "both":
                members = [n for n in members if f"_{experiment.upper()}_" in n]
            if not members:
                raise InputError(f"{path}: no *_responses_*.csv member for experiment '{experiment}'")
            for n in sorted(members):
                src = f"{path}!{n}"
                frames.append((_read_aic3_frame(_read_csv(path, src, z.read(n)), src), src))
    else:
        frames.append((_read_aic3_frame(_read_csv(path), str(path)), str(path)))
    dropped = {"skip": 0, "identical_sides": 0}
    for f, _ in frames:
        for k, v in f.attrs["dropped"].items():
            dropped[k] += v
    src = frames[0][1] if len(frames) == 1 else str(path)
    out = pd.concat([f for f, _ in frames], ignore_index=True)
    out = prepare_votes(out, src, duplicates)
    out.attrs["dropped"] = dropped
    return out


@_register("sureal-pc", "Netflix sureal paired-comparison dataset (JSON export)")
def read_sureal_pc(path, duplicates: str = "keep-all", **_) -> pd.DataFrame:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as e:
        raise InputError(f"{path}: no such file") from e
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: line {e.lineno}: invalid JSON: {e.msg}") from e
    for key in ("ref_videos", "dis_videos"):
        if key not in data:
            raise InputError(f"{path}: field '{key}' missing (not a sureal dataset)")
    content_name = {r["content_id"]: r.get("content_name", str(r["content_id"])) for r in data["ref_videos"]}
    assets = {}
    for i, dv in enumerate(data["dis_videos"]):
        aid = dv.get("asset_id", i)
        stem = Path(dv.get("path", f"asset{aid}")).stem
        assets[aid] = (content_name.get(dv["content_id"], str(dv["content_id"])), stem)
    rows = []
    for i, dv in enumerate(data["dis_videos"]):
        os_ = dv.get("os")
        if not isinstance(os_, list):
            raise InputError(
                f"{path}: dis_videos[{i}].os: expected a list of {{subject, other_asset_id, count}} "
                "(an ACR dataset is not paired comparison)"
            )
        me = dv.get("asset_id", i)
        for j, e in enumerate(os_):
            where = f"{path}: dis_videos[{i}].os[{j}]"
            try:
                subj, other, cnt = str(e["subject"]), int(e["other_asset_id"]), float(e["count"])
            except (KeyError, TypeError, ValueError) as ex:
                raise InputError(f"{where}: needs subject, other_asset_id, count ({ex})") from ex
            if other not in assets:
                raise InputError(f"{where}: other_asset_id {other} is not an asset")
            if assets[other][0] != assets[me][0]:
                raise InputError(f"{where}: compares assets of different contents")
            a, b = assets[me][1], assets[other][1]
            if cnt == 0.5:
                rows.append((subj, assets[me][0], a, b, TIE))
            elif cnt >= 0 and cnt == int(cnt):
                rows.extend([(subj, assets[me][0], a, b, a)] * int(cnt))
            else:
                raise InputError(f"{where}: count must be a non-negative integer or 0.5, got {cnt}")
    out = pd.DataFrame(rows, columns=["participant", "content", "condition_a", "condition_b", "winner"])
    return prepare_votes(out, str(path), duplicates)


def votes_from_counts(
    counts, conditions, content: str = "all", participant: str = "pooled", group: str | None = None
) -> pd.DataFrame:
    """Expand a count matrix (``M[i, j]`` = times i preferred over j) into canonical votes.

    Non-integer counts: the integer part becomes votes, a remaining 1/2 on both sides becomes a tie.
    """
    m = np.asarray(counts, dtype=float)
    rows = []
    n = m.shape[0]
    for i in range(n):
        for j in range(n):
            if i == j:
                continue
            k = int(np.floor(m[i, j] + 1e-9))
            rows.extend([(participant, content, conditions[i], conditions[j], conditions[i])] * k)
            if i < j and abs(m[i, j] - k - 0.5) < 1e-9 and abs(m[j, i] - np.floor(m[j, i] + 1e-9) - 0.5) < 1e-9:
                rows.append((participant, content, conditions[i], conditions[j], TIE))
    out = pd.DataFrame(rows, columns=["participant", "content", "condition_a", "condition_b", "winner"])
    if group is not None:
        out["group"] = group
    return out


@_register("counts", "count matrix (.mat: one square variable per content; .csv: labelled square table)")
def read_count_matrix(path, conditions: list[str] | None = None, **_) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    parts = []
    if path.suffix.lower() == ".mat":
        from scipy.io import loadmat

        try:
            mat = loadmat(path)
        except Exception as e:  # scipy raises several types for corrupt files
            raise InputError(f"{path}: cannot read as a MATLAB .mat file: {e}") from e
        for name, val in sorted(mat.items()):
            if name.startswith("__") or not isinstance(val, np.ndarray) or val.ndim != 2:
                continue
            if val.shape[0] != val.shape[1] or val.shape[0] < 2 or not np.issubdtype(val.dtype, np.number):
                continue
            if (val < 0).any():
                raise InputError(f"{path}: variable '{name}': negative counts")
            n = val.shape[0]
            names = conditions or [f"c{i + 1:02d}" for i in range(n)]
            if len(names) != n:
                raise InputError(f"{path}: variable '{name}' is {n}x{n} but {len(names)} condition names given")
            parts.append(votes_from_counts(val, names, content=re.sub(r"^pwc_mat_", "", name)))
        if not parts:
            raise InputError(f"{path}: no square numeric count matrix inside")
    else:
        try:
            df = pd.read_csv(path, index_col=0)
        except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as e:
            raise InputError(f"{path}: cannot parse as CSV: {e}") from e
        if df.shape[0] != df.shape[1]:
            raise InputError(f"{path}: count matrix must be square, got {df.shape[0]} rows x {df.shape[1]} columns")
        if [str(c) for c in df.columns] != [str(c) for c in df.index]:
            raise InputError(f"{path}: the header row and the first column must list the same conditions in order")
        vals = df.apply(pd.to_numeric, errors="coerce")
        if vals.isna().any().any():
            r, c = np.argwhere(vals.isna().to_numpy())[0]
            raise InputError(f"{path}: line {r + 2}: column '{df.columns[c]}': not a number: '{df.iat[r, c]}'")
        if (vals.to_numpy() < 0).any():
            r, c = np.argwhere(vals.to_numpy() < 0)[0]
            raise InputError(f"{path}: line {r + 2}: column '{df.columns[c]}': negative count")
        parts.append(votes_from_counts(vals.to_numpy(), [str(c) for c in df.columns], content=path.stem))
    out = pd.concat(parts, ignore_index=True)
    return prepare_votes(out, str(path))


def sniff_format(path) -> str:
    """Guess the format from the extension and the header."""
    path = Path(path)
    suf = path.suffix.lower()
    if path.is_dir():
        if list(path.glob("*_display_experiment_data.csv")):
            return "hdr-vdc"
        raise InputError(f"{path}: a folder; only an HDR-VDC data folder is recognised (give --format)")
    if suf == ".zip":
        return "aic3"
    if suf == ".mat":
        return "counts"
    if suf == ".json":
        return "sureal-pc"
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            header = [h.strip() for h in f.readline().strip().split(",")]
    except FileNotFoundError as e:
        raise InputError(f"{path}: no such file") from e
    h = set(header)
    if {"participant", "winner"} & h or {"condition_a", "condition_b"} <= h:
        return "votes"  # the canonical reader then names any missing column
    if "is_A_selected" in h:
        return "pwcmp"
    if {"dist_type1", "dist_level1", "selected"} <= h:
        return "pwcmp-lf"
    if {"img_pivot", "response", "worker"} <= h:
        return "aic3"
    if {"condition_1", "condition_2", "selection"} <= h:
        if {"session_id", "criterion"} & h:
            return "pwcmp-2022"
        return "hdr-vdc"
    if header and header[0] == "" or (len(header) > 2 and header[0].lower() in ("", "condition")):
        return "counts"
    raise InputError(
        f"{path}: cannot tell the format from the header ({', '.join(header[:8])}); give --format "
        f"({', '.join(FORMATS)})"
    )


def read_any(path, format: str | None = None, **kw) -> pd.DataFrame:
    """Read votes in any supported format (``format=None``: sniff it)."""
    fmt = format or sniff_format(path)
    if fmt not in FORMATS:
        raise InputError(f"unknown votes format '{fmt}'{did_you_mean(fmt, FORMATS)}; known: {', '.join(FORMATS)}")
    out = FORMATS[fmt][0](path, **kw)
    out.attrs["format"] = fmt
    return out
