"""The one definition of every interchange file, and the validating reader and writer they share.

Every plain-text table that lossarena writes for another stage (or reads from another lab) is
described here once: its columns, their types, which are required, and the values with a fixed
meaning (the ``reference`` condition, ties). Readers and writers in every stage use
:func:`read_table` / :func:`write_table` with these schemas instead of their own column lists.

Schemas (see ``docs/architecture.md`` for who writes and reads each file):

=============  ===========================================================================================
``MANIFEST``   ``STIMULI/manifest.csv``: ``content,condition,target_bpp,bpp,path`` (+ metric columns);
               the original image of a content is condition :data:`REFERENCE` with empty ``bpp``
               (and usually empty ``target_bpp``).
``VOTES``      ``votes.csv``: ``participant,content,condition_a,condition_b,winner``
               (+ ``group,response_time_ms,timestamp,count`` and any extra column).
``TRIPLETS``   ``triplets.csv``: ``reference,a,b,p_a`` (paths relative to an images folder; ``p_a`` in [0, 1]).
``SCORES``     ``scores.csv``: group-by keys, ``condition,score,ci_low,ci_high,wins,comparisons,
               winning_frequency`` (+ ``component``).
``OUTLIERS``   ``outliers.csv``: ``participant,circular_triads,zeta,likelihood_score,is_outlier``.
``ACC``        ``acc.csv``: ``metric,score_2afc,accuracy,ci_low,ci_high,n``.
``RESULTS``    codecs ``results.csv``: ``image,model,codec,loss,lmbda,level,step,bpp,bpp_est,
               seconds_enc,seconds_dec`` + one column per metric.
``JND``        ``jnd.csv``: ``content,condition,jnd,ci_low,ci_high`` (``analysis jnd``); side file
               ``JND_BOOSTING`` ``<stem>_boosting.csv``: ``content,condition,codec,boost_group,
               boosted_value,gamma1,gamma2,n_plain,n_boosted``.
=============  ===========================================================================================

The tie rule (one rule everywhere)
    ``winner`` is a tie when, stripped of surrounding blanks, it equals ``tie`` in any letter case
    (``tie``, ``TIE``, ``Tie``); readers normalise it to :data:`TIE` (``"tie"``). Because of that, no
    condition may be called ``tie`` in any case (:func:`is_tie` on a condition name is an error). A tie
    counts one half for each side everywhere (winning frequencies, count matrices, Thurstone and
    Bradley-Terry fits, triplet ``p_a``).

The ``count`` column
    Optional in ``votes.csv``: the number of identical judgments one row stands for (a positive
    integer, at most :func:`limit` ``("count")``; default 1). Count matrices are read into one row per
    ordered pair with its count instead of one row per vote, so a 24-byte file claiming 10,000,000
    votes stays small. A tie row with ``count = k`` is ``k`` ties.

Hostile input
    :func:`read_table` reads with the :mod:`csv` module under explicit limits (file size, field length,
    rows, counts; see :func:`limit` and ``docs/security.md``), decodes strictly as UTF-8 (a byte-order
    mark is allowed), refuses rows with more or fewer fields than the header, duplicate or empty
    column names, header-only files and input columns whose name starts with ``_`` (those names are
    reserved for bookkeeping columns such as :data:`LINE`, which the reader fills itself). Every
    problem raises :class:`SchemaError` (an :class:`~lossarena.errors.InputError`, exit code 2) whose
    one-line message names the file, the line and the field.
"""

from __future__ import annotations

import csv
import io
import math
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from lossarena.errors import InputError

#: The condition name of the original (undistorted) image of a content in manifests and votes.
REFERENCE = "reference"
#: The canonical ``winner`` value of a tie (read case-insensitively, see :func:`is_tie`).
TIE = "tie"
#: Bookkeeping column added by :func:`read_table`: the (1-based) line on which each row starts.
LINE = "_line"
#: Prefix reserved for bookkeeping columns; input columns with this prefix are refused.
RESERVED_PREFIX = "_"

# ---------------------------------------------------------------------------------------------
# limits

#: name -> (environment variable, default, meaning). Change a limit with the environment variable
#: (or the ``limits=`` argument of :func:`read_table`); ``docs/security.md`` lists them all.
LIMITS: dict[str, tuple[str, float, str]] = {
    "file_bytes": ("LOSSARENA_MAX_FILE_BYTES", 1 << 30, "bytes in one table file (or zip member)"),
    "field_chars": ("LOSSARENA_MAX_FIELD_CHARS", 65_536, "characters in one CSV field"),
    "rows": ("LOSSARENA_MAX_ROWS", 20_000_000, "data rows in one table"),
    "count": ("LOSSARENA_MAX_COUNT", 1_000_000_000, "votes one row or one count-matrix cell may stand for"),
    "conditions": ("LOSSARENA_MAX_CONDITIONS", 2_000, "conditions in one count matrix"),
}


def limit(name: str) -> int:
    """The current value of limit ``name`` (see :data:`LIMITS`), from its environment variable if set.

    Raises
    ------
    InputError
        If the environment variable is not a positive integer.
    """
    env, default, _ = LIMITS[name]
    raw = os.environ.get(env)
    if raw is None or raw.strip() == "":
        return int(default)
    try:
        v = int(float(raw))
    except ValueError:
        raise InputError(f"environment variable {env}: expected a positive integer, got {raw[:40]!r}") from None
    if v <= 0:
        raise InputError(f"environment variable {env}: expected a positive integer, got {raw[:40]!r}")
    return v


# ---------------------------------------------------------------------------------------------
# errors


class SchemaError(InputError):
    """A malformed interchange file; the message is one line naming the file, line and field.

    Attributes ``path``, ``line`` (1-based, or None) and ``field`` (or None) repeat what the message says.
    """

    def __init__(self, path, message: str, line: int | None = None, field: str | None = None):
        self.path, self.line, self.field = str(path), line, field
        where = str(path)
        if line is not None:
            where += f": line {line}"
        if field is not None:
            where += f": field '{show(field, 60)}'"
        sep = " " if field is not None and message.startswith("is ") else ": "
        super().__init__(f"{where}{sep}{message}")


def show(value, n: int = 60) -> str:
    """A value as it may appear in a one-line message: control characters escaped, at most ``n`` chars."""
    s = str(value)
    s = s.encode("unicode_escape", errors="backslashreplace").decode("ascii") if not s.isprintable() else s
    return s if len(s) <= n else s[: n - 3] + "..."


# ---------------------------------------------------------------------------------------------
# the tie rule


def is_tie(value) -> bool:
    """True when ``value`` means a tie: ``tie`` in any letter case, surrounding blanks ignored."""
    return isinstance(value, str) and value.strip().casefold() == TIE


def tie_mask(values: pd.Series) -> np.ndarray:
    """Vectorised :func:`is_tie` over a string Series."""
    return (values.astype(str).str.strip().str.casefold() == TIE).to_numpy(dtype=bool)


# ---------------------------------------------------------------------------------------------
# schema objects


@dataclass(frozen=True)
class Column:
    """One column of an interchange table.

    ``kind``: ``str`` (stripped text), ``float`` (finite number), ``int`` (integer-valued number) or
    ``bool`` (``true/false/1/0/yes/no``, any case). ``required``: the header must name it.
    ``empty``: an empty value is allowed (read as ``""`` for text, NaN for numbers; NaN-able ints
    become float). ``lo``/``hi``: inclusive bounds for numbers; ``hi_limit``: the name of a
    :func:`limit` used as the upper bound.
    """

    name: str
    kind: str = "str"
    required: bool = True
    empty: bool = False
    lo: float | None = None
    hi: float | None = None
    hi_limit: str | None = None
    doc: str = ""


@dataclass(frozen=True)
class Schema:
    """A table: its columns in canonical order; ``extra`` columns are kept (``True``) or refused."""

    name: str
    columns: tuple[Column, ...]
    extra: bool = True
    doc: str = ""
    key: tuple[str, ...] = field(default_factory=tuple)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)

    @property
    def optional(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if not c.required)

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)


MANIFEST = Schema(
    "manifest",
    (
        Column("content", doc="content (source image) name"),
        Column("condition", doc=f"codec/condition name; the original is '{REFERENCE}'"),
        Column("target_bpp", "float", empty=True, lo=0, doc="target bitrate (empty for the reference)"),
        Column("bpp", "float", empty=True, lo=0, doc="real bitrate (empty for the reference)"),
        Column("path", doc="image path relative to the manifest's folder (or absolute)"),
    ),
    doc="stimuli manifest written by `codecs match`, read by `study build` and the votes-to-triplets loader",
    key=("content", "condition", "target_bpp"),
)

VOTES = Schema(
    "votes",
    (
        Column("participant"),
        Column("content"),
        Column("condition_a", doc="shown first / on the left"),
        Column("condition_b"),
        Column("winner", doc=f"condition_a, condition_b or '{TIE}' (any case)"),
        Column("group", required=False, empty=True, doc="blocking variable, e.g. the target bitrate"),
        Column("response_time_ms", "float", required=False, empty=True, lo=0),
        Column("timestamp", required=False, empty=True, doc="ISO 8601"),
        Column("count", "int", required=False, empty=True, lo=1, hi_limit="count",
               doc="identical judgments this row stands for (default 1)"),
    ),
    doc="one row per pairwise judgment (or per `count` identical judgments)",
)

TRIPLETS = Schema(
    "triplets",
    (
        Column("reference"),
        Column("a"),
        Column("b"),
        Column("p_a", "float", lo=0, hi=1, doc="fraction of judgments preferring a (ties 1/2)"),
    ),
    doc="2AFC triplets for `benchmark 2afc`",
)

SCORES = Schema(
    "scores",
    (
        Column("condition"),
        Column("score", "float", empty=True),
        Column("ci_low", "float", empty=True),
        Column("ci_high", "float", empty=True),
        Column("wins", "float", lo=0),
        Column("comparisons", "float", lo=0),
        Column("winning_frequency", "float", empty=True, lo=0, hi=1),
        Column("component", "int", required=False, empty=True, lo=0),
    ),
    doc="`analysis scale` output; the group-by key columns come first (extra columns)",
)

OUTLIERS = Schema(
    "outliers",
    (
        Column("participant"),
        Column("circular_triads", "float", empty=True, lo=0),
        Column("zeta", "float", empty=True),
        Column("likelihood_score", "float", empty=True),
        Column("is_outlier", "bool"),
    ),
    doc="`analysis outliers` output",
)

ACC = Schema(
    "acc",
    (
        Column("metric"),
        Column("score_2afc", "float", empty=True, lo=0, hi=1),
        Column("accuracy", "float", empty=True, lo=0, hi=1),
        Column("ci_low", "float", empty=True),
        Column("ci_high", "float", empty=True),
        Column("n", "int", lo=0),
    ),
    doc="`benchmark 2afc` output",
)

RESULTS = Schema(
    "results",
    (
        Column("image"),
        Column("model"),
        Column("codec"),
        Column("loss", empty=True),
        Column("lmbda", "float", empty=True),
        Column("level", empty=True),
        Column("step", "float", empty=True),
        Column("bpp", "float", lo=0),
        Column("bpp_est", "float", empty=True),
        Column("seconds_enc", "float", empty=True, lo=0),
        Column("seconds_dec", "float", empty=True, lo=0),
    ),
    doc="`codecs evaluate` output; one extra column per metric",
)

JND = Schema(
    "jnd",
    (
        Column("content", doc="source image, e.g. img02"),
        Column("condition", doc="test image, e.g. AVIF_01 (the reference is 0 JND and not listed)"),
        Column("jnd", "float", lo=0, doc="impairment in JND units (plain scale)"),
        Column("ci_low", "float", required=False, empty=True),
        Column("ci_high", "float", required=False, empty=True),
    ),
    doc="`analysis jnd` output, read by `benchmark jnd` and `analysis report --jnd`",
    key=("content", "condition"),
)

JND_BOOSTING = Schema(
    "jnd_boosting",
    (
        Column("content"),
        Column("condition"),
        Column("codec"),
        Column("boost_group", "int", lo=0),
        Column("boosted_value", "float", doc="h(jnd) = gamma1 * jnd + gamma2 * jnd^2 (boosted scale)"),
        Column("gamma1", "float"),
        Column("gamma2", "float"),
        Column("n_plain", "float", lo=0),
        Column("n_boosted", "float", lo=0),
    ),
    doc="`analysis jnd` side file <stem>_boosting.csv: boosted-scale values and rescaling parameters",
)

SCHEMAS: dict[str, Schema] = {s.name: s for s in (MANIFEST, VOTES, TRIPLETS, SCORES, OUTLIERS, ACC, RESULTS,
                                                   JND, JND_BOOSTING)}


# ---------------------------------------------------------------------------------------------
# reading


@dataclass
class RawTable:
    """Header, rows (lists of str, all of the header's length) and the line each row starts on."""

    source: str
    header: list[str]
    rows: list[list[str]]
    lines: list[int]


def read_bytes(path, source: str | None = None, max_bytes: int | None = None) -> bytes:
    """The bytes of a file, refused (before reading) when larger than the ``file_bytes`` limit."""
    path = Path(path)
    src = source or str(path)
    cap = max_bytes or limit("file_bytes")
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise SchemaError(src, "not a regular file")
        if size > cap:
            raise SchemaError(src, f"file is {size} bytes, more than the limit of {cap} (LOSSARENA_MAX_FILE_BYTES)")
        with open(path, "rb") as f:
            data = f.read(cap + 1)
    except FileNotFoundError:
        raise SchemaError(src, "no such file") from None
    except IsADirectoryError:
        raise SchemaError(src, "a folder, expected a file") from None
    except OSError as e:
        raise SchemaError(src, f"cannot read ({e.strerror or e})") from None
    if len(data) > cap:
        raise SchemaError(src, f"file is more than the limit of {cap} bytes (LOSSARENA_MAX_FILE_BYTES)")
    return data


def decode_text(data: bytes, source: str) -> str:
    """Strict UTF-8 (BOM allowed); a bad byte is reported with its line (and field when it can be told)."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        start = 3 if data.startswith(b"\xef\xbb\xbf") else 0
        pos = e.start + start
        line = data.count(b"\n", 0, pos) + 1
        raise SchemaError(source, f"not UTF-8 text (byte 0x{data[pos]:02x} at offset {pos})", line=line,
                          field=_field_at(data, pos)) from None


def _field_at(data: bytes, pos: int) -> str | None:
    """The header name of the CSV field that holds byte ``pos`` (best effort, for messages)."""
    try:
        lo = data.rfind(b"\n", 0, pos) + 1
        hi = data.find(b"\n", pos)
        hi = len(data) if hi < 0 else hi
        first = data[: data.find(b"\n") if b"\n" in data else len(data)]
        head = next(csv.reader([first.decode("utf-8", "replace").lstrip("\ufeff")]), [])
        k = data[lo:pos].decode("utf-8", "replace").count(",")
        if lo == 0 or hi - lo > 1_000_000:
            return None
        return head[k].strip() if k < len(head) else None
    except (csv.Error, IndexError):
        return None


def read_raw(path=None, *, data: bytes | None = None, source: str | None = None, header: bool = True,
             names: Sequence[str] | None = None, limits: dict | None = None,
             ragged_ok: bool = False) -> RawTable:
    """Parse a CSV file (or ``data``) into a :class:`RawTable` under the limits, strictly.

    ``header=False`` takes the column names from ``names``. Blank lines are skipped. A row with a
    different number of fields than the header is an error unless ``ragged_ok`` (then the caller checks).
    """
    lim = {k: limit(k) for k in ("file_bytes", "field_chars", "rows")}
    lim.update(limits or {})
    src = source or str(path)
    if data is None:
        data = read_bytes(path, src, lim["file_bytes"])
    elif len(data) > lim["file_bytes"]:
        raise SchemaError(src, f"{len(data)} bytes, more than the limit of {lim['file_bytes']} "
                               "(LOSSARENA_MAX_FILE_BYTES)")
    text = decode_text(data, src)
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise SchemaError(src, "NUL byte in a text file (binary data?)", line=line)
    old = csv.field_size_limit()
    csv.field_size_limit(int(lim["field_chars"]))
    rows: list[list[str]] = []
    lines: list[int] = []
    hdr: list[str] | None = None if header else [str(n) for n in (names or ())]
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    prev = 0
    try:
        for rec in reader:
            start, prev = prev + 1, reader.line_num
            if not rec or (len(rec) == 1 and rec[0].strip() == ""):
                continue
            if hdr is None:
                hdr = [h.strip() for h in rec]
                continue
            if len(rec) != len(hdr) and not ragged_ok:
                raise SchemaError(src, f"expected {len(hdr)} fields ({show(','.join(hdr), 80)}), got {len(rec)}",
                                  line=start)
            if len(rows) >= lim["rows"]:
                raise SchemaError(src, f"more than {lim['rows']} data rows (LOSSARENA_MAX_ROWS)", line=start)
            rows.append(rec)
            lines.append(start)
    except csv.Error as e:
        msg = str(e)
        if "field larger than field limit" in msg:
            msg = f"a field longer than {lim['field_chars']} characters (LOSSARENA_MAX_FIELD_CHARS)"
        raise SchemaError(src, f"malformed CSV: {msg}", line=reader.line_num or 1) from None
    finally:
        csv.field_size_limit(old)
    if hdr is None:
        raise SchemaError(src, "empty file (no header line)")
    return RawTable(src, hdr, rows, lines)


def _check_header(raw: RawTable, schema: Schema | None) -> None:
    src = raw.source
    seen: set[str] = set()
    for h in raw.header:
        if h == "":
            raise SchemaError(src, "a column has an empty name", line=1)
        if h.startswith(RESERVED_PREFIX):
            raise SchemaError(src, f"column names starting with '{RESERVED_PREFIX}' are reserved for "
                                   "internal bookkeeping", line=1, field=h)
        if h in seen:
            raise SchemaError(src, "column appears twice in the header", line=1, field=h)
        seen.add(h)
    if schema is None:
        return
    missing = [c for c in schema.required if c not in seen]
    if missing:
        raise SchemaError(src, f"missing column(s) {', '.join(missing)}; {schema.name} files need "
                               f"{','.join(schema.required)} (found: {show(','.join(raw.header), 120)})", line=1)
    if not schema.extra:
        extra = [h for h in raw.header if schema.column(h) is None]
        if extra:
            raise SchemaError(src, f"unexpected column (a {schema.name} file has {','.join(schema.names)})",
                              line=1, field=extra[0])


_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


def _convert(col: Column, values: np.ndarray, lines: np.ndarray, src: str):
    """Validate and convert one column (an object array of stripped str); raise on the first bad value."""
    empty = values == ""
    if not col.empty and empty.any():
        i = int(np.flatnonzero(empty)[0])
        raise SchemaError(src, "is empty", line=int(lines[i]), field=col.name)
    if col.kind == "str":
        return values
    if col.kind == "bool":
        low = np.char.lower(values.astype(str))
        t, f = np.isin(low, list(_TRUE)), np.isin(low, list(_FALSE))
        bad = ~(t | f | empty)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise SchemaError(src, f"expected true or false, got '{show(values[i])}'", line=int(lines[i]),
                              field=col.name)
        return t
    num = pd.to_numeric(pd.Series(values, dtype=object).where(~empty, None), errors="coerce").to_numpy(
        dtype=float)
    bad = np.isnan(num) & ~empty
    what = "an integer" if col.kind == "int" else "a number"
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise SchemaError(src, f"expected {what}, got '{show(values[i])}'", line=int(lines[i]), field=col.name)
    inf = np.isinf(num)
    if inf.any():
        i = int(np.flatnonzero(inf)[0])
        raise SchemaError(src, f"expected a finite number, got '{show(values[i])}'", line=int(lines[i]),
                          field=col.name)
    ok = ~np.isnan(num)
    if col.kind == "int":
        frac = ok & (num != np.floor(num))
        if frac.any():
            i = int(np.flatnonzero(frac)[0])
            raise SchemaError(src, f"expected an integer, got '{show(values[i])}'", line=int(lines[i]),
                              field=col.name)
    hi = col.hi if col.hi_limit is None else limit(col.hi_limit)
    for bound, cmp, word in ((col.lo, np.less, "at least"), (hi, np.greater, "at most")):
        if bound is None:
            continue
        out = ok & cmp(num, bound)
        if out.any():
            i = int(np.flatnonzero(out)[0])
            extra = f" ({LIMITS[col.hi_limit][0]})" if word == "at most" and col.hi_limit else ""
            raise SchemaError(src, f"expected a number {word} {bound:g}{extra}, got '{show(values[i])}'",
                              line=int(lines[i]), field=col.name)
    if col.kind == "int" and not (~ok).any():
        return num.astype(np.int64)
    return num


_strip = np.frompyfunc(str.strip, 1, 1)


def frame_from_raw(raw: RawTable, schema: Schema | None = None, *, allow_empty: bool = False) -> pd.DataFrame:
    """Validate a :class:`RawTable` against ``schema`` and build the DataFrame (see :func:`read_table`)."""
    _check_header(raw, schema)
    if not raw.rows and not allow_empty:
        raise SchemaError(raw.source, "no data rows (header only)" if raw.header else "empty file")
    lines = np.asarray(raw.lines, dtype=np.int64)
    cols: dict[str, object] = {}
    width = len(raw.header)
    rows = raw.rows if all(len(r) == width for r in raw.rows) else [(r + [""] * width)[:width] for r in raw.rows]
    columns = list(zip(*rows)) if rows else [()] * width
    for h, col in zip(raw.header, columns):
        vals = np.empty(len(col), dtype=object)
        vals[:] = col
        vals = _strip(vals) if len(vals) else vals
        spec = schema.column(h) if schema is not None else None
        cols[h] = _convert(spec, vals, lines, raw.source) if spec is not None else vals
    df = pd.DataFrame(cols, index=pd.RangeIndex(len(raw.rows)))
    df[LINE] = lines
    df.attrs["source"] = raw.source
    return df


def read_table(path, schema: Schema | None = None, *, data: bytes | None = None, source: str | None = None,
               allow_empty: bool = False, header: bool = True, names: Sequence[str] | None = None,
               limits: dict | None = None) -> pd.DataFrame:
    """Read and validate one interchange table.

    Parameters
    ----------
    path : str or Path
        The CSV file (ignored when ``data`` is given, except for messages).
    schema : Schema, optional
        The expected columns (e.g. :data:`VOTES`); None only checks the CSV structure and header.
    data : bytes, optional
        The file's content when it does not come from disk (e.g. a zip member).
    source : str, optional
        How messages name the file (default ``str(path)``).
    allow_empty : bool
        Accept a header-only file (default: refuse it; empty inputs are errors, not empty outputs).
    header, names
        ``header=False`` for headerless files, whose columns are ``names``.
    limits : dict, optional
        Override ``file_bytes``, ``field_chars`` or ``rows`` (default: :func:`limit`).

    Returns
    -------
    pandas.DataFrame
        One row per data row, the file's columns in file order: text stripped, numbers as float
        (``int`` columns without empty values as int64, NaN for empty numbers), bools as bool; plus
        the :data:`LINE` column (the line each row starts on, header = line 1) and
        ``attrs['source']``.

    Raises
    ------
    SchemaError
        Any malformed input (exit code 2); the message names the file, line and field.
    """
    raw = read_raw(path, data=data, source=source, header=header, names=names, limits=limits)
    return frame_from_raw(raw, schema, allow_empty=allow_empty)


def line_of(df: pd.DataFrame, i: int) -> int | None:
    """The file line of positional row ``i`` (None when the frame did not come from a file)."""
    if LINE in df.columns:
        return int(df[LINE].iat[i])
    return None


def check_count(value, source: str, line: int | None = None, field: str | None = None,
                allow_half: bool = False) -> float:
    """One vote count: finite, non-negative, integer (or ``k + 1/2`` when ``allow_half``), at most the limit.

    Raises
    ------
    SchemaError
        Naming ``source``, ``line`` and ``field``.
    """
    try:
        v = float(value)
    except (TypeError, ValueError, OverflowError):
        raise SchemaError(source, f"expected a vote count, got '{show(value)}'", line=line, field=field) from None
    if isinstance(value, bool) or not math.isfinite(v) or v < 0:
        raise SchemaError(source, f"expected a finite non-negative vote count, got '{show(value)}'",
                          line=line, field=field)
    cap = limit("count")
    if v > cap:
        raise SchemaError(source, f"count {v:g} is more than the limit of {cap} (LOSSARENA_MAX_COUNT)",
                          line=line, field=field)
    if v != math.floor(v) and not (allow_half and 2 * v == math.floor(2 * v)):
        kind = "an integer or a half" if allow_half else "an integer"
        raise SchemaError(source, f"expected {kind} vote count, got '{show(value)}'", line=line, field=field)
    return v


# ---------------------------------------------------------------------------------------------
# votes rows (shared by the analysis layer and the votes-to-triplets loader)

# Row offset between a DataFrame position (0-based) and the line number in a CSV with one header line.
_LINE_OFFSET = 2


def line_of_index(df: pd.DataFrame, idx) -> int:
    """The file line of the row with index label ``idx`` (position + 2 for frames built in memory)."""
    if LINE in df.columns:
        return int(df.loc[idx, LINE])
    return int(idx) + _LINE_OFFSET


def _fail(df: pd.DataFrame, idx, source: str, field: str, msg: str) -> SchemaError:
    return SchemaError(source, msg, line=line_of_index(df, idx), field=field)


def validate_votes(df: pd.DataFrame, source: str = "<votes>") -> pd.DataFrame:
    """Check the canonical columns and every row; return a cleaned copy.

    Parameters
    ----------
    df : pandas.DataFrame
        Votes with at least the :data:`VOTES.required` columns (from :func:`read_votes`, a reader of
        :mod:`.readers` or built in memory).
    source : str
        How messages name the input.

    Returns
    -------
    pandas.DataFrame
        Text columns as stripped ``str``, ``winner`` ties normalised to ``tie``, ``count`` as int64
        (when present; empty = 1), ``response_time_ms`` as float, and the ``_line`` bookkeeping column.

    Raises
    ------
    SchemaError
        Naming ``source``, the CSV line (header = line 1) and the field.
    """
    missing = [c for c in VOTES.required if c not in df.columns]
    if missing:
        raise SchemaError(
            source, f"missing column(s) {', '.join(missing)}; votes need {','.join(VOTES.required)}"
            f" (found: {show(','.join(map(str, df.columns)), 120)})", line=1,
        )
    if len(df) == 0:
        raise SchemaError(source, "no votes (an empty table is an error, not an empty result)")
    out = df.copy()
    if LINE not in out.columns:
        out[LINE] = np.arange(len(out)) + _LINE_OFFSET
    for c in VOTES.required + tuple(c for c in ("group",) if c in out.columns):
        col = out[c]
        if c == "group":
            out[c] = col.fillna("").astype(str).str.strip()
            continue
        bad = col.isna()
        if bad.any():
            raise _fail(out, bad.idxmax(), source, c, "is empty")
        out[c] = col.astype(str).str.strip()
        empty = out[c] == ""
        if empty.any():
            raise _fail(out, empty.idxmax(), source, c, "is empty")
    same = out["condition_a"] == out["condition_b"]
    if same.any():
        i = same.idxmax()
        raise _fail(out, i, source, "condition_b", f"both conditions are '{show(out.loc[i, 'condition_a'])}' "
                    "(a pair needs two different conditions)")
    for c in ("condition_a", "condition_b"):
        t = tie_mask(out[c])
        if t.any():
            i = out.index[int(np.flatnonzero(t)[0])]
            raise _fail(out, i, source, c, f"'{show(out.loc[i, c])}' is reserved for ties (in any letter case)")
    tie = tie_mask(out["winner"])
    if tie.any():
        out.loc[tie, "winner"] = TIE
    ok = (out["winner"] == out["condition_a"]) | (out["winner"] == out["condition_b"]) | tie
    if not ok.all():
        i = (~ok).idxmax()
        raise _fail(out, i, source, "winner", f"is '{show(out.loc[i, 'winner'])}', expected "
                    f"'{show(out.loc[i, 'condition_a'])}', '{show(out.loc[i, 'condition_b'])}' or '{TIE}'")
    for c in ("response_time_ms", "count"):
        if c not in out.columns:
            continue
        raw = out[c]
        blank = raw.isna() | (raw.astype(str).str.strip() == "")
        num = pd.to_numeric(raw.where(~blank, None), errors="coerce").astype(float)
        bad = (num.isna() & ~blank) | np.isinf(num)
        if bad.any():
            i = bad.idxmax()
            raise _fail(out, i, source, c, f"expected a finite number, got '{show(raw.loc[i])}'")
        if c == "count":
            cap = limit("count")
            bad = ~blank & ((num < 1) | (num != np.floor(num)) | (num > cap))
            if bad.any():
                i = bad.idxmax()
                raise _fail(out, i, source, c, f"expected an integer from 1 to {cap} (LOSSARENA_MAX_COUNT), "
                            f"got '{show(raw.loc[i])}'")
            out[c] = num.fillna(1).astype(np.int64)
        else:
            if (num < 0).any():
                i = (num < 0).idxmax()
                raise _fail(out, i, source, c, f"expected a non-negative number, got '{show(raw.loc[i])}'")
            out[c] = num
    return out


def vote_weights(df: pd.DataFrame) -> np.ndarray:
    """The number of judgments each row stands for (the ``count`` column, else 1), as float."""
    if "count" in df.columns:
        return df["count"].to_numpy(dtype=float)
    return np.ones(len(df))


def n_judgments(df: pd.DataFrame) -> int:
    """The number of judgments in a votes frame (rows weighted by ``count``)."""
    return int(round(vote_weights(df).sum()))


# ---------------------------------------------------------------------------------------------
# writing


def ordered_columns(df: pd.DataFrame, schema: Schema, extras: bool = True) -> list[str]:
    """Schema columns present in ``df`` in canonical order, then extras (never bookkeeping ``_`` columns)."""
    missing = [c for c in schema.required if c not in df.columns]
    if missing:
        raise ValueError(f"expected a {schema.name} table with columns {','.join(schema.required)}, "
                         f"got {','.join(map(str, df.columns))}")
    cols = [c for c in schema.names if c in df.columns]
    if extras and schema.extra:
        cols += [c for c in df.columns if c not in cols and not str(c).startswith(RESERVED_PREFIX)]
    return cols


def write_table(df: pd.DataFrame, path, schema: Schema, *, float_format: str | None = None,
                extras: bool = True) -> Path:
    """Write ``df`` as ``schema``'s CSV atomically (a temporary file renamed into place).

    Columns: the schema's, in canonical order, then extra columns (when the schema keeps them);
    bookkeeping columns (``_`` prefix) are never written.

    Raises
    ------
    ValueError
        If a required column is missing.
    """
    path = Path(path)
    cols = ordered_columns(df, schema, extras)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as f:
            df[cols].to_csv(f, index=False, float_format=float_format)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_rows(rows: Iterable[dict], path, schema: Schema, extra_columns: Sequence[str] = ()) -> Path:
    """Write dict rows (missing keys empty) with the schema's columns plus ``extra_columns``, atomically."""
    cols = list(schema.names) + [c for c in extra_columns if c not in schema.names]
    df = pd.DataFrame([{c: r.get(c, "") for c in cols} for r in rows], columns=cols)
    return write_table(df, path, schema)
