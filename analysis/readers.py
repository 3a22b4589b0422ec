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
                 carry no observer, so outlier screening does not apply). Read into one row per ordered
                 pair with a ``count`` column (never one row per vote): cost O(N^2) whatever the counts.

Every reader reads under the limits of :mod:`lossarena.data.schemas` (file size, field length, rows,
counts, conditions; ``docs/security.md``) and turns malformed input into a
:class:`~lossarena.data.schemas.SchemaError` (exit code 2) whose one line names the file, the line
(or the JSON/matrix field) and the field.
"""

from __future__ import annotations

import json
import re
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from lossarena.data.schemas import (
    LINE,
    REFERENCE,
    TIE,
    SchemaError,
    check_count,
    frame_from_raw,
    limit,
    read_bytes,
    read_raw,
    show,
)

from lossarena.errors import InputError, did_you_mean

from .votes import find_duplicates, prepare_votes, read_votes

FORMATS: dict[str, tuple[Callable, str]] = {}


def _register(name: str, help_: str):
    def deco(fn):
        FORMATS[name] = (fn, help_)
        return fn

    return deco


def _read_csv(path: Path, src: str | None = None, data: bytes | None = None) -> pd.DataFrame:
    """A foreign CSV as stripped text columns plus the ``_line`` column (see :func:`~lossarena.data.schemas.read_table`)."""
    return frame_from_raw(read_raw(path, data=data, source=src or str(path)))


def _need(df: pd.DataFrame, cols, src: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        found = ", ".join(c for c in df.columns if c != LINE)
        raise SchemaError(src, f"missing column(s) {', '.join(missing)} (found: {show(found, 120)})", line=1)


def _check_values(df: pd.DataFrame, col: str, allowed, src: str) -> None:
    bad = ~df[col].str.strip().isin(allowed)
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise SchemaError(src, f"'{show(df[col].iloc[i])}', expected one of {', '.join(allowed)}",
                          line=int(df[LINE].iat[i]), field=col)


def _lines(df: pd.DataFrame) -> np.ndarray:
    return df[LINE].to_numpy()


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


def _aic3_condition(names: pd.Series, src: str, lines: np.ndarray) -> np.ndarray:
    m = names.str.extract(_AIC3_NAME)
    bad = m[0].isna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise SchemaError(src, f"cannot parse image name '{show(names.iloc[i])}'", line=int(lines[i]),
                          field=str(names.name))
    cond = m[0] + "_" + m[1]
    return np.where(m[0] == "0ref", REFERENCE, cond)


def _read_aic3_frame(df: pd.DataFrame, src: str) -> pd.DataFrame:
    need = ["worker", "method", "img_num", "img_left", "img_right", "img_pivot", "codec_pivot", "response"]
    _need(df, need, src)
    _check_values(df, "response", ["left", "right", "notsure", "skip"], src)
    notref = df["codec_pivot"].str.strip() != "0"
    if notref.any():
        i = int(np.flatnonzero(notref.to_numpy())[0])
        raise SchemaError(src, f"pivot is not the reference (codec_pivot={show(df['codec_pivot'].iloc[i])})",
                          line=int(df[LINE].iat[i]), field="codec_pivot")
    left = _aic3_condition(df["img_left"], src, _lines(df))
    right = _aic3_condition(df["img_right"], src, _lines(df))
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


_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError, EOFError, OSError,
               ValueError, zlib.error)
_MAX_ZIP_MEMBERS = 10_000


def _zip_members(path: Path, experiment: str) -> list[tuple[str, bytes]]:
    """The ``*_responses_*.csv`` members of an AIC-3 zip, each refused before reading when its declared
    size exceeds the file-size limit, and read with a bounded read (a lying header cannot inflate it)."""
    cap = limit("file_bytes")
    if path.stat().st_size > cap:
        raise SchemaError(path, f"file is more than the limit of {cap} bytes (LOSSARENA_MAX_FILE_BYTES)")
    out = []
    try:
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
            if len(infos) > _MAX_ZIP_MEMBERS:
                raise SchemaError(path, f"{len(infos)} members, more than {_MAX_ZIP_MEMBERS}")
            members = [i for i in infos if i.filename.endswith(".csv") and "_responses_" in i.filename]
            if experiment != "both":
                members = [i for i in members if f"_{experiment.upper()}_" in i.filename]
            if not members:
                raise SchemaError(path, f"no *_responses_*.csv member for experiment '{experiment}'")
            total = 0
            for info in sorted(members, key=lambda i: i.filename):
                src = f"{path}!{show(info.filename, 200)}"
                if info.file_size > cap or total + info.file_size > cap:
                    raise SchemaError(src, f"member of {info.file_size} bytes: more than the limit of {cap} "
                                           "(LOSSARENA_MAX_FILE_BYTES)")
                with z.open(info) as f:
                    data = f.read(cap + 1 - total)
                total += len(data)
                if total > cap:
                    raise SchemaError(src, f"inflates to more than the limit of {cap} bytes "
                                           "(LOSSARENA_MAX_FILE_BYTES)")
                out.append((src, data))
    except _ZIP_ERRORS as e:
        raise SchemaError(path, f"not a readable zip archive ({show(e, 120)})") from None
    return out


@_register("aic3", "JPEG AIC-3 triplet responses (zip or responses CSV); pairs judged against the reference")
def read_aic3(path, experiment: str = "both", duplicates: str = "keep-all", **_) -> pd.DataFrame:
    """``experiment``: ``btc``, ``ptc`` or ``both`` (only for the zip)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    frames = []
    if path.suffix.lower() == ".zip":
        for src, data in _zip_members(path, experiment):
            frames.append((_read_aic3_frame(_read_csv(path, src, data), src), src))
    else:
        frames.append((_read_aic3_frame(_read_csv(path), str(path)), str(path)))
    dropped = {"skip": 0, "identical_sides": 0}
    for f, _src in frames:
        for k, v in f.attrs["dropped"].items():
            dropped[k] += v
    src = frames[0][1] if len(frames) == 1 else str(path)
    out = pd.concat([f for f, _src in frames], ignore_index=True)
    out = prepare_votes(out, src, duplicates)
    out.attrs["dropped"] = dropped
    return out


def _load_json(path: Path):
    src = str(path)
    text = read_bytes(path, src)
    try:
        return json.loads(text.decode("utf-8-sig"))
    except UnicodeDecodeError as e:
        raise SchemaError(src, f"not UTF-8 text (byte offset {e.start})") from None
    except json.JSONDecodeError as e:
        raise SchemaError(src, f"invalid JSON: {e.msg}", line=e.lineno) from None
    except RecursionError:
        raise SchemaError(src, "JSON nested too deeply") from None


def _expect(value, kind: type | tuple, src: str, field: str, what: str):
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise SchemaError(src, f"expected {what}, got {type(value).__name__} '{show(value)}'", field=field)
    return value


def _key(value, src: str, field: str) -> str:
    """A JSON id or name (string or integer) as text."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise SchemaError(src, f"expected a string or an integer, got {type(value).__name__} '{show(value)}'",
                          field=field)
    return str(value)


@_register("sureal-pc", "Netflix sureal paired-comparison dataset (JSON export)")
def read_sureal_pc(path, duplicates: str = "keep-all", **_) -> pd.DataFrame:
    """A sureal paired-comparison dataset; each ``os`` entry becomes one row with its ``count``
    (never expanded into one row per vote); a count of 0.5 is one tie."""
    path = Path(path)
    src = str(path)
    data = _expect(_load_json(path), dict, src, "(top level)", "a JSON object with ref_videos and dis_videos")
    for key in ("ref_videos", "dis_videos"):
        if key not in data:
            raise SchemaError(src, "missing (not a sureal dataset)", field=key)
        _expect(data[key], list, src, key, "a list")
    content_name = {}
    for i, r in enumerate(data["ref_videos"]):
        f = f"ref_videos[{i}]"
        _expect(r, dict, src, f, "an object")
        if "content_id" not in r:
            raise SchemaError(src, "missing", field=f + ".content_id")
        cid = _key(r["content_id"], src, f + ".content_id")
        content_name[cid] = _key(r.get("content_name", cid), src, f + ".content_name")
    assets = {}
    for i, dv in enumerate(data["dis_videos"]):
        f = f"dis_videos[{i}]"
        _expect(dv, dict, src, f, "an object")
        aid = _key(dv.get("asset_id", i), src, f + ".asset_id")
        if "content_id" not in dv:
            raise SchemaError(src, "missing", field=f + ".content_id")
        cid = _key(dv["content_id"], src, f + ".content_id")
        stem = Path(_key(dv.get("path", f"asset{aid}"), src, f + ".path")).stem
        if not stem:
            raise SchemaError(src, "empty file name", field=f + ".path")
        assets[aid] = (content_name.get(cid, cid), stem)
    rows = []
    for i, dv in enumerate(data["dis_videos"]):
        os_ = dv.get("os")
        if not isinstance(os_, list):
            raise SchemaError(src, "expected a list of {subject, other_asset_id, count} "
                                   "(an ACR dataset is not paired comparison)", field=f"dis_videos[{i}].os")
        me = _key(dv.get("asset_id", i), src, f"dis_videos[{i}].asset_id")
        for j, e in enumerate(os_):
            where = f"dis_videos[{i}].os[{j}]"
            _expect(e, dict, src, where, "an object {subject, other_asset_id, count}")
            for k in ("subject", "other_asset_id", "count"):
                if k not in e:
                    raise SchemaError(src, "missing", field=f"{where}.{k}")
            subj = _key(e["subject"], src, where + ".subject")
            other = _key(e["other_asset_id"], src, where + ".other_asset_id")
            if isinstance(e["count"], bool) or not isinstance(e["count"], (int, float)):
                raise SchemaError(src, f"expected a number, got {type(e['count']).__name__} '{show(e['count'])}'",
                                  field=where + ".count")
            cnt = check_count(e["count"], src, field=where + ".count", allow_half=True)
            if other not in assets:
                raise SchemaError(src, f"{show(other)} is not an asset", field=where + ".other_asset_id")
            if assets[other][0] != assets[me][0]:
                raise SchemaError(src, "compares assets of different contents", field=where + ".other_asset_id")
            a, b = assets[me][1], assets[other][1]
            if a == b:
                raise SchemaError(src, "compares an asset with itself", field=where + ".other_asset_id")
            if cnt == 0.5:
                rows.append((subj, assets[me][0], a, b, TIE, 1))
            elif cnt == int(cnt):
                if cnt > 0:
                    rows.append((subj, assets[me][0], a, b, a, int(cnt)))
            else:
                raise SchemaError(src, f"expected a non-negative integer or 0.5, got {cnt:g}", field=where + ".count")
    if not rows:
        raise SchemaError(src, "no paired comparisons (every count is 0)")
    out = pd.DataFrame(rows, columns=["participant", "content", "condition_a", "condition_b", "winner", "count"])
    return prepare_votes(out, src, duplicates)


def votes_from_counts(
    counts, conditions, content: str = "all", participant: str = "pooled", group: str | None = None,
    source: str = "<counts>",
) -> pd.DataFrame:
    """Votes from a count matrix without expanding it: one row per ordered pair with its ``count``.

    Parameters
    ----------
    counts : array_like, shape (N, N)
        ``M[i, j]`` = times condition i was preferred over j; finite, non-negative, integer or a half
        (the diagonal is ignored). A half on both ``M[i, j]`` and ``M[j, i]`` is one tie.
    conditions : sequence of str, length N
    content, participant, group : str
        Written into every row.
    source : str
        How messages name the input.

    Returns
    -------
    pandas.DataFrame
        Canonical vote columns plus ``count`` (rows with zero votes are left out); its size is O(N^2)
        whatever the counts are.

    Raises
    ------
    SchemaError
        A negative, non-finite, non-integer (other than a matched half) count or one above the
        ``count`` limit, naming ``M[i, j]``.
    """
    m = np.asarray(counts, dtype=float)
    n = m.shape[0]
    if m.ndim != 2 or m.shape[1] != n or len(conditions) != n:
        raise SchemaError(source, f"expected an N x N matrix with N = {len(conditions)} condition names, "
                                  f"got shape {m.shape}")
    off = ~np.eye(n, dtype=bool)
    cap = limit("count")
    vals = np.where(off, m, 0.0)
    bad = ~np.isfinite(vals) | (vals < 0) | (vals > cap) | (2 * vals != np.floor(2 * vals))
    if bad.any():
        i, j = np.argwhere(bad)[0]
        check_count(m[i, j], source, field=f"M[{conditions[i]}, {conditions[j]}]", allow_half=True)
    k = np.floor(vals)
    half = vals - k > 0
    unmatched = half & ~half.T
    if unmatched.any():
        i, j = np.argwhere(unmatched)[0]
        raise SchemaError(source, f"a half vote needs a matching half in M[{show(conditions[j])}, "
                                  f"{show(conditions[i])}] (a tie)", field=f"M[{conditions[i]}, {conditions[j]}]")
    ii, jj = np.nonzero(k > 0)
    conds = np.asarray([str(c) for c in conditions], dtype=object)
    out = pd.DataFrame({"participant": participant, "content": content, "condition_a": conds[ii],
                        "condition_b": conds[jj], "winner": conds[ii], "count": k[ii, jj].astype(np.int64)})
    ti, tj = np.nonzero(np.triu(half, 1))
    if len(ti):
        ties = pd.DataFrame({"participant": participant, "content": content, "condition_a": conds[ti],
                             "condition_b": conds[tj], "winner": TIE, "count": 1})
        out = pd.concat([out, ties], ignore_index=True)
    if group is not None:
        out["group"] = group
    return out


# scipy's MATLAB reader runs in a child process: on crafted files it can crash the interpreter (a
# SIGSEGV on an invalid data-type tag was found by benchmarks/fuzz.py with scipy 1.17), so it gets its
# own process with a time and address-space limit, and only plain float arrays come back (.npz, no pickle).
_MAT_CHILD = r"""
import json, sys
import numpy as np
from scipy.io import loadmat, whosmat
path, out, nmax = sys.argv[1], sys.argv[2], int(sys.argv[3])
numeric = {"double", "single", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64"}
try:
    info = whosmat(path)
    names = [n for n, shape, cls in info
             if len(shape) == 2 and shape[0] == shape[1] and 2 <= shape[0] <= nmax and cls in numeric]
    big = [n for n, shape, _ in info if len(shape) == 2 and shape[0] == shape[1] and shape[0] > nmax]
    mat = loadmat(path, variable_names=names) if names else {}
except Exception as e:
    print(json.dumps({"error": f"{type(e).__name__}: {str(e)[:160]}"}))
    sys.exit(0)
keep = []
for name in sorted(mat):
    v = mat[name]
    if name.startswith("__") or not isinstance(v, np.ndarray) or v.ndim != 2 or v.shape[0] != v.shape[1]:
        continue
    if v.shape[0] < 2 or not np.issubdtype(v.dtype, np.number):
        continue
    if np.iscomplexobj(v):
        print(json.dumps({"complex": name}))
        sys.exit(0)
    keep.append((name, v.astype(float)))
np.savez(out, *[v for _, v in keep])
print(json.dumps({"names": [n for n, _ in keep], "big": big}))
"""


def _mat_matrices(path: Path) -> list[tuple[str, np.ndarray]]:
    """The square numeric variables of a .mat file, read by scipy in a child process with limits;
    shapes are checked (``whosmat``) before loading."""
    import subprocess
    import sys
    import tempfile

    src = str(path)
    read_bytes(path, src)  # the size limit, before scipy touches it
    nmax = limit("conditions")

    def limits() -> None:
        import resource

        cap = 4 << 30
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    with tempfile.TemporaryDirectory(prefix="lossarena-mat-") as d:
        out = Path(d) / "m.npz"
        try:
            p = subprocess.run([sys.executable, "-c", _MAT_CHILD, str(path), str(out), str(nmax)],
                               capture_output=True, text=True, timeout=120, preexec_fn=limits)
        except subprocess.TimeoutExpired:
            raise SchemaError(src, "cannot read as a MATLAB .mat file (the reader ran longer than 120 s)") from None
        try:
            msg = json.loads(p.stdout.strip().splitlines()[-1]) if p.returncode == 0 else None
        except (IndexError, json.JSONDecodeError):
            msg = None
        if msg is None:
            how = f"signal {-p.returncode}" if p.returncode < 0 else f"exit {p.returncode}"
            raise SchemaError(src, f"cannot read as a MATLAB .mat file (the reader failed: {how})")
        if "error" in msg:
            raise SchemaError(src, f"cannot read as a MATLAB .mat file ({show(msg['error'], 160)})")
        if "complex" in msg:
            raise SchemaError(src, "complex counts", field=msg["complex"])
        if not msg["names"] and msg["big"]:
            raise SchemaError(src, f"more than {nmax} conditions (LOSSARENA_MAX_CONDITIONS)", field=msg["big"][0])
        if not msg["names"]:
            return []
        with np.load(out, allow_pickle=False) as z:
            return [(name, np.asarray(z[f"arr_{i}"], dtype=float)) for i, name in enumerate(msg["names"])]


@_register("counts", "count matrix (.mat: one square variable per content; .csv: labelled square table)")
def read_count_matrix(path, conditions: list[str] | None = None, **_) -> pd.DataFrame:
    """A count matrix as votes with a ``count`` column (one row per ordered pair, never per vote)."""
    path = Path(path)
    src = str(path)
    parts = []
    if path.suffix.lower() == ".mat":
        for name, val in _mat_matrices(path):
            n = val.shape[0]
            names = conditions or [f"c{i + 1:02d}" for i in range(n)]
            if len(names) != n:
                raise SchemaError(src, f"{n}x{n} but {len(names)} condition names given", field=name)
            parts.append(votes_from_counts(val, names, content=re.sub(r"^pwc_mat_", "", name),
                                           source=f"{src}: variable '{show(name)}'"))
        if not parts:
            raise SchemaError(src, "no square numeric count matrix inside")
    else:
        raw = read_raw(path, source=src, limits={"rows": limit("conditions")})
        head = raw.header
        names = [h for h in head[1:]]
        if len(names) < 2:
            raise SchemaError(src, "a count matrix needs a header row with at least two condition names", line=1)
        if len(names) > limit("conditions"):
            raise SchemaError(src, f"more than {limit('conditions')} conditions (LOSSARENA_MAX_CONDITIONS)", line=1)
        if len(set(names)) != len(names) or any(not c for c in names):
            raise SchemaError(src, "condition names in the header must be unique and non-empty", line=1)
        if len(raw.rows) != len(names):
            raise SchemaError(src, f"count matrix must be square: {len(names)} columns but {len(raw.rows)} rows")
        m = np.zeros((len(names), len(names)))
        for r, (rec, line) in enumerate(zip(raw.rows, raw.lines)):
            if rec[0].strip() != names[r]:
                raise SchemaError(src, f"row {r + 1} is '{show(rec[0].strip())}' but the header's column "
                                       f"{r + 1} is '{show(names[r])}' (same conditions, same order)",
                                  line=line, field=head[0] or "(row label)")
            for c in range(len(names)):
                cell = rec[c + 1].strip()
                try:
                    v = float(cell)
                except ValueError:
                    raise SchemaError(src, f"not a number: '{show(cell)}'", line=line, field=names[c]) from None
                if r != c:
                    check_count(v if np.isfinite(v) else cell, src, line=line, field=names[c], allow_half=True)
                m[r, c] = v if r != c else 0.0
        parts.append(votes_from_counts(m, names, content=path.stem, source=src))
    out = pd.concat(parts, ignore_index=True)
    if out.empty:
        raise SchemaError(src, "no votes (every count is 0)")
    return prepare_votes(out, src)


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
        with open(path, "rb") as f:
            first = f.read(65536).split(b"\n", 1)[0].decode("utf-8", errors="replace").lstrip("\ufeff")
    except FileNotFoundError:
        raise SchemaError(path, "no such file") from None
    except OSError as e:
        raise SchemaError(path, f"cannot read ({e.strerror or e})") from None
    header = [h.strip() for h in first.strip().split(",")]
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
    raise SchemaError(
        path, f"cannot tell the format from the header ({show(', '.join(header[:8]), 100)}); give --format "
        f"({', '.join(FORMATS)})", line=1,
    )


def read_any(path, format: str | None = None, **kw) -> pd.DataFrame:
    """Read votes in any supported format (``format=None``: sniff it)."""
    fmt = format or sniff_format(path)
    if fmt not in FORMATS:
        raise InputError(f"unknown votes format '{fmt}'{did_you_mean(fmt, FORMATS)}; known: {', '.join(FORMATS)}")
    out = FORMATS[fmt][0](path, **kw)
    out.attrs["format"] = fmt
    return out
