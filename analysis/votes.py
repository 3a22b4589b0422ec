"""The canonical votes table: one row per pairwise judgment.

Columns (``votes.csv``)::

    participant,content,condition_a,condition_b,winner[,group,response_time_ms,timestamp,...]

The columns, their types and the tie rule are defined once in :mod:`lossarena.data.schemas`
(:data:`~lossarena.data.schemas.VOTES`). ``winner`` is the name of the chosen condition (it must equal
``condition_a`` or ``condition_b``) or a tie: ``tie`` in any letter case, normalised to ``tie``; no
condition may be called ``tie``. A tie counts one half for each condition everywhere (winning
frequencies, count matrices, Thurstone and Bradley-Terry fits). The optional ``count`` column says how
many identical judgments a row stands for (default 1; count matrices are read that way, so the
analysis works from counts and never expands them into one row per vote). Extra columns are kept.

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
from lossarena.data.schemas import (
    LINE,
    TIE,
    VOTES,
    SchemaError,
    line_of_index,
    n_judgments,
    read_table,
    show,
    tie_mask,
    validate_votes,
    vote_weights,
    write_table,
)

from lossarena.errors import InputError

REQUIRED = VOTES.required
OPTIONAL = VOTES.optional
DUPLICATE_POLICIES = ("keep-all", "keep-first", "keep-last", "error")
__all__ = ["TIE", "REQUIRED", "OPTIONAL", "DUPLICATE_POLICIES", "validate_votes", "read_votes", "prepare_votes",
           "ensure_votes", "write_votes", "encode_votes", "EncodedVotes", "find_duplicates", "vote_weights",
           "n_judgments"]

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
    dup = d.duplicated(keys, keep="first" if policy != "keep-last" else "last").to_numpy()
    multi = vote_weights(df) > 1  # a row standing for several judgments repeats itself
    if policy == "error":
        bad = dup | multi
        if bad.any():
            i = df.index[int(np.flatnonzero(bad)[0])]
            raise SchemaError(
                source,
                f"duplicate vote: participant '{show(df.loc[i, 'participant'])}' already judged "
                f"{show(df.loc[i, 'condition_a'])} vs {show(df.loc[i, 'condition_b'])} on content "
                f"'{show(df.loc[i, 'content'])}' (use --duplicates keep-all/keep-first/keep-last)",
                line=line_of_index(df, i), field="participant",
            )
        return df
    out = df.loc[~dup]
    if multi.any():
        out = out.copy()
        out["count"] = 1
    return out


def read_votes(path, duplicates: str = "keep-all") -> pd.DataFrame:
    """Read a canonical votes CSV; validate every row; apply the duplicate policy.

    Parameters
    ----------
    path : str or Path
        The ``votes.csv`` file (see :data:`lossarena.data.schemas.VOTES`).
    duplicates : str
        One of :data:`DUPLICATE_POLICIES`.

    Returns
    -------
    pandas.DataFrame
        Validated votes (see :func:`validate_votes`) with ``attrs['duplicates']`` (a
        :class:`DuplicateReport`) and ``attrs['source']``; the ``_line`` column keeps each row's line.

    Raises
    ------
    SchemaError
        Malformed file (exit code 2), naming the file, line and field; a header-only file is an error.
    """
    path = Path(path)
    df = read_table(path, VOTES)
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
    """Accept a path or a DataFrame (validated unless it has the ``_line`` column, which only
    :func:`prepare_votes` and the readers add: files cannot name a column ``_line``)."""
    if isinstance(votes, (str, Path)):
        return read_votes(votes, duplicates=duplicates)
    if isinstance(votes, pd.DataFrame):
        if LINE in votes.columns and duplicates == "keep-all":
            return votes
        return prepare_votes(votes, duplicates=duplicates)
    raise InputError(f"votes must be a path or a pandas DataFrame, not {type(votes).__name__}")


def write_votes(df: pd.DataFrame, path) -> Path:
    """Write the canonical CSV atomically (required columns first, then optional, then any extras;
    never the ``_line`` bookkeeping column)."""
    return write_table(df, path, VOTES)


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
    tie = tie_mask(sw)
    a_won = (sw == sa).to_numpy(dtype=bool)
    w = vote_weights(df)
    pcodes, participants = pd.factorize(df["participant"], sort=True)
    win = np.where(a_won, ia, ib)
    lose = np.where(a_won, ib, ia)
    # ties: one half-vote each way
    win_t = np.concatenate([win[~tie], ia[tie], ib[tie]])
    lose_t = np.concatenate([lose[~tie], ib[tie], ia[tie]])
    obs_t = np.concatenate([pcodes[~tie], pcodes[tie], pcodes[tie]])
    wt = np.concatenate([w[~tie], 0.5 * w[tie], 0.5 * w[tie]])
    return EncodedVotes(list(conditions), [str(p) for p in participants], win_t, lose_t, obs_t.astype(np.int64), wt)
