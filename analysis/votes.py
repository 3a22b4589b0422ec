"""The canonical votes table: one row per pairwise judgment.

Columns (``votes.csv``)::

    participant,content,condition_a,condition_b,winner[,group,response_time_ms,timestamp,...]

``winner`` is the name of the chosen condition (it must equal ``condition_a`` or ``condition_b``) or
``tie``. A tie counts one half for each condition everywhere (winning frequencies, count matrices,
Thurstone and Bradley-Terry fits). Extra columns are kept as they are.

Duplicate votes -- the same participant judging the same unordered pair of the same content (and
group) more than once -- are reported by :func:`find_duplicates` and handled by a policy:

``keep-all`` (default)
    every vote counts; repeated judgments are legitimate in many designs (pwcmp, AIC-3 BTC).
``keep-first`` / ``keep-last``
    keep only the first / last vote of each (participant, content, group, pair), in file order.
``error``
    raise :class:`~lossarena.errors.InputError` naming the first duplicate's line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lossarena.errors import InputError

REQUIRED = ("participant", "content", "condition_a", "condition_b", "winner")
OPTIONAL = ("group", "response_time_ms", "timestamp")
TIE = "tie"
DUPLICATE_POLICIES = ("keep-all", "keep-first", "keep-last", "error")

# Row offset between a DataFrame index (0-based) and the line number in a CSV with one header line.
_LINE_OFFSET = 2


def _line_of(df: pd.DataFrame, idx) -> int:
    if "_line" in df.columns:
        return int(df.loc[idx, "_line"])
    return int(idx) + _LINE_OFFSET


def validate_votes(df: pd.DataFrame, source: str = "<votes>") -> pd.DataFrame:
    """Check the canonical columns and every row; return a cleaned copy (strings, stripped).

    Raises InputError naming ``source`` and the offending CSV line (header = line 1).
    """
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise InputError(
            f"{source}: missing column(s) {', '.join(missing)}; votes need {','.join(REQUIRED)}"
            f" (found: {','.join(map(str, df.columns))})"
        )
    out = df.copy()
    if "_line" not in out.columns:
        out["_line"] = np.arange(len(out)) + _LINE_OFFSET
    for c in REQUIRED + tuple(c for c in ("group",) if c in out.columns):
        col = out[c]
        bad = col.isna()
        if c == "group":
            out[c] = col.fillna("").astype(str).str.strip()
            continue
        if bad.any():
            i = bad.idxmax()
            raise InputError(f"{source}: line {_line_of(out, i)}: empty field '{c}'")
        out[c] = col.astype(str).str.strip()
        empty = out[c] == ""
        if empty.any():
            i = empty.idxmax()
            raise InputError(f"{source}: line {_line_of(out, i)}: empty field '{c}'")
    same = out["condition_a"] == out["condition_b"]
    if same.any():
        i = same.idxmax()
        raise InputError(
            f"{source}: line {_line_of(out, i)}: condition_a and condition_b are both "
            f"'{out.loc[i, 'condition_a']}' (a pair needs two different conditions)"
        )
    for c in ("condition_a", "condition_b"):
        t = out[c] == TIE
        if t.any():
            i = t.idxmax()
            raise InputError(f"{source}: line {_line_of(out, i)}: field '{c}': '{TIE}' is reserved for ties")
    ok = (out["winner"] == out["condition_a"]) | (out["winner"] == out["condition_b"]) | (out["winner"] == TIE)
    if not ok.all():
        i = (~ok).idxmax()
        raise InputError(
            f"{source}: line {_line_of(out, i)}: field 'winner' is '{out.loc[i, 'winner']}', expected "
            f"'{out.loc[i, 'condition_a']}', '{out.loc[i, 'condition_b']}' or '{TIE}'"
        )
    if "response_time_ms" in out.columns:
        rt = pd.to_numeric(out["response_time_ms"], errors="coerce")
        bad = rt.isna() & out["response_time_ms"].notna() & (out["response_time_ms"].astype(str).str.strip() != "")
        if bad.any():
            i = bad.idxmax()
            raise InputError(
                f"{source}: line {_line_of(out, i)}: field 'response_time_ms' is not a number: "
                f"'{out.loc[i, 'response_time_ms']}'"
            )
        out["response_time_ms"] = rt
    return out


@dataclass(eq=False)
class DuplicateReport:
    """Votes that repeat a (participant, content, group, unordered pair)."""

    n_votes: int
    n_duplicate_votes: int  # votes beyond the first of their key
    n_keys: int  # keys that occur more than once
    examples: list  # up to 10 keys (dicts) with their vote counts

    def __str__(self) -> str:
        if not self.n_duplicate_votes:
            return "no duplicate votes"
        return (
            f"{self.n_duplicate_votes} duplicate vote(s) of {self.n_votes} "
            f"({self.n_keys} participant/content/pair key(s) judged more than once)"
        )


def _pair_keys(df: pd.DataFrame) -> list[str]:
    keys = ["participant", "content"] + (["group"] if "group" in df.columns else [])
    return keys + ["_lo", "_hi"]


def _with_pair(df: pd.DataFrame) -> pd.DataFrame:
    a = df["condition_a"].to_numpy(dtype=object)
    b = df["condition_b"].to_numpy(dtype=object)
    swap = a > b
    d = df.copy()
    d["_lo"] = np.where(swap, b, a)
    d["_hi"] = np.where(swap, a, b)
    return d


def find_duplicates(df: pd.DataFrame) -> DuplicateReport:
    d = _with_pair(df)
    keys = _pair_keys(d)
    sizes = d.groupby(keys, sort=False).size()
    multi = sizes[sizes > 1]
    ex = multi.rename("votes").reset_index().rename(columns={"_lo": "condition_1", "_hi": "condition_2"})
    return DuplicateReport(
        n_votes=len(df),
        n_duplicate_votes=int((multi - 1).sum()),
        n_keys=len(multi),
        examples=ex.head(10).to_dict("records"),
    )


def apply_duplicate_policy(df: pd.DataFrame, policy: str = "keep-all", source: str = "<votes>") -> pd.DataFrame:
    """Apply one of :data:`DUPLICATE_POLICIES` (see the module docstring)."""
    if policy not in DUPLICATE_POLICIES:
        raise InputError(f"unknown duplicate policy '{policy}'; choose one of {', '.join(DUPLICATE_POLICIES)}")
    if policy == "keep-all":
        return df
    d = _with_pair(df)
    keys = _pair_keys(d)
    dup = d.duplicated(keys, keep="first" if policy != "keep-last" else "last")
    if policy == "error":
        if dup.any():
            i = dup.idxmax()
            raise InputError(
                f"{source}: line {_line_of(df, i)}: duplicate vote: participant '{df.loc[i, 'participant']}' "
                f"already judged {df.loc[i, 'condition_a']} vs {df.loc[i, 'condition_b']} on content "
                f"'{df.loc[i, 'content']}' (use --duplicates keep-all/keep-first/keep-last)"
            )
        return df
    return df.loc[~dup.to_numpy()]


def read_votes(path, duplicates: str = "keep-all") -> pd.DataFrame:
    """Read a canonical votes CSV; validate every row; apply the duplicate policy.

    The returned frame carries ``attrs['duplicates']`` (a :class:`DuplicateReport`) and
    ``attrs['source']``; a hidden ``_line`` column keeps each row's CSV line for error messages.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such votes file")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: cannot parse as CSV: {e}") from e
    except pd.errors.EmptyDataError as e:
        raise InputError(f"{path}: empty file") from e
    return prepare_votes(df, source=str(path), duplicates=duplicates)


def prepare_votes(df: pd.DataFrame, source: str = "<votes>", duplicates: str = "keep-all") -> pd.DataFrame:
    """Validate an in-memory votes frame and apply the duplicate policy (as :func:`read_votes`)."""
    out = validate_votes(df, source)
    report = find_duplicates(out)
    out = apply_duplicate_policy(out, duplicates, source).reset_index(drop=True)
    out.attrs["duplicates"] = report
    out.attrs["source"] = source
    return out


def ensure_votes(votes, duplicates: str = "keep-all") -> pd.DataFrame:
    """Accept a path or a DataFrame (validated if it has no ``_line`` column yet)."""
    if isinstance(votes, (str, Path)):
        return read_votes(votes, duplicates=duplicates)
    if isinstance(votes, pd.DataFrame):
        if "_line" in votes.columns and duplicates == "keep-all":
            return votes
        return prepare_votes(votes, duplicates=duplicates)
    raise InputError(f"votes must be a path or a pandas DataFrame, not {type(votes).__name__}")


def write_votes(df: pd.DataFrame, path) -> Path:
    """Write the canonical CSV (required columns first, then optional, then any extras)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cols = list(REQUIRED) + [c for c in OPTIONAL if c in df.columns]
    cols += [c for c in df.columns if c not in cols and not str(c).startswith("_")]
    df[cols].to_csv(path, index=False)
    return path


@dataclass
class EncodedVotes:
    """Votes as integer codes for fast counting: each vote adds ``weight`` to C[win, lose].

    A tie becomes two half-weight entries (a beats b by 1/2, b beats a by 1/2).
    """

    conditions: list[str]
    participants: list[str]
    win: np.ndarray
    lose: np.ndarray
    obs: np.ndarray
    weight: np.ndarray

    @property
    def n(self) -> int:
        return len(self.conditions)

    def counts(self, obs_weights: np.ndarray | None = None) -> np.ndarray:
        """The N x N count matrix C (C[i, j] = times i was preferred over j)."""
        n = self.n
        w = self.weight if obs_weights is None else self.weight * obs_weights[self.obs]
        flat = np.bincount(self.win * n + self.lose, weights=w, minlength=n * n)
        return flat.reshape(n, n)


def encode_votes(df: pd.DataFrame, conditions: list[str] | None = None) -> EncodedVotes:
    """Encode (a subset of) validated votes; ``conditions`` fixes the order (default: sorted)."""
    sa, sb, sw = df["condition_a"], df["condition_b"], df["winner"]
    if conditions is None:
        conditions = sorted(set(pd.unique(sa)) | set(pd.unique(sb)))
    ia = pd.Categorical(sa, categories=conditions).codes.astype(np.int64)
    ib = pd.Categorical(sb, categories=conditions).codes.astype(np.int64)
    if (ia < 0).any() or (ib < 0).any():
        bad = sa[ia < 0].iloc[0] if (ia < 0).any() else sb[ib < 0].iloc[0]
        raise InputError(f"condition '{bad}' is not among the given conditions")
    tie = (sw == TIE).to_numpy(dtype=bool)
    a_won = (sw == sa).to_numpy(dtype=bool)
    pcodes, participants = pd.factorize(df["participant"], sort=True)
    win = np.where(a_won, ia, ib)
    lose = np.where(a_won, ib, ia)
    # ties: one half-vote each way
    win_t = np.concatenate([win[~tie], ia[tie], ib[tie]])
    lose_t = np.concatenate([lose[~tie], ib[tie], ia[tie]])
    obs_t = np.concatenate([pcodes[~tie], pcodes[tie], pcodes[tie]])
    wt = np.concatenate([np.ones((~tie).sum()), np.full(tie.sum(), 0.5), np.full(tie.sum(), 0.5)])
    return EncodedVotes(list(conditions), [str(p) for p in participants], win_t, lose_t, obs_t.astype(np.int64), wt)
