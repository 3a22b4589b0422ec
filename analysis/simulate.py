"""Simulated pairwise-comparison studies with known truth (Thurstone observers + random responders).

Used by the tests (scale recovery, outlier detection), the benchmarks and the demo until real votes
exist. Same seed, same votes.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pandas as pd

from .thurstone import SIGMA


def simulate_votes(
    true_scores: dict[Any, dict[str, float]] | dict[str, float],
    *,
    n_observers: int = 20,
    n_random: int = 0,
    repeats: int = 1,
    design: str = "full",
    pairs_per_observer: int | None = None,
    group_of: dict[str, str] | None = None,
    tie_prob: float = 0.0,
    seed: int = 0,
) -> pd.DataFrame:
    """Canonical votes from Thurstone Case V observers (JOD truth) plus ``n_random`` coin flippers.

    ``true_scores``: {content: {condition: JOD}} (or one {condition: JOD} for a single content
    "c0"); a key may be a tuple (content, group), which fills the ``group`` column. ``design``: "full" (every pair, ``repeats`` times), "adjacent" (pairs of neighbours in
    true-score order, as in the seed's sampling) or "random" (``pairs_per_observer`` random pairs
    per content). Random responders are named ``rand_XX``, honest ones ``obs_XX``.
    ``group_of``: content -> group label (e.g. bitrate) added as column ``group``.
    """
    truth: dict[Any, dict[str, float]] = (
        {"c0": true_scores}  # type: ignore[dict-item]
        if true_scores and not isinstance(next(iter(true_scores.values())), dict)
        else true_scores  # type: ignore[assignment]
    )
    rng = np.random.default_rng(seed)
    rows = []
    observers = [f"obs_{i:02d}" for i in range(n_observers)] + [f"rand_{i:02d}" for i in range(n_random)]
    has_group = group_of is not None or any(isinstance(k, tuple) for k in truth)
    for key, scores in truth.items():
        content, group = key if isinstance(key, tuple) else (key, (group_of or {}).get(key, ""))
        conds = list(scores)
        if design == "full":
            pairs = list(itertools.combinations(conds, 2)) * repeats
        elif design == "adjacent":
            order = sorted(conds, key=lambda c: scores[c])
            pairs = list(zip(order[:-1], order[1:])) * repeats
        elif design == "random":
            allp = list(itertools.combinations(conds, 2))
            k = pairs_per_observer or len(allp)
            pairs = None
        else:
            raise ValueError(f"unknown design {design}")
        for obs in observers:
            if pairs is None:
                sel = rng.choice(len(allp), size=k, replace=k > len(allp))
                my_pairs = [allp[s] for s in sel]
            else:
                my_pairs = list(pairs)
            rng.shuffle(my_pairs)
            for a, b in my_pairs:
                if rng.random() < 0.5:
                    a, b = b, a
                if obs.startswith("rand_"):
                    p = 0.5
                else:
                    p = 0.5 * (1 + math.erf((scores[a] - scores[b]) / SIGMA / math.sqrt(2)))
                if tie_prob and rng.random() < tie_prob:
                    w = "tie"
                else:
                    w = a if rng.random() < p else b
                row = {"participant": obs, "content": content, "condition_a": a, "condition_b": b, "winner": w}
                if has_group:
                    row["group"] = group
                row["response_time_ms"] = int(rng.gamma(4.0, 600.0)) if not obs.startswith("rand_") else int(
                    rng.gamma(2.0, 250.0)
                )
                rows.append(row)
    return pd.DataFrame(rows)


def demo_truth(n_contents: int = 3, seed: int = 0) -> dict:
    """A small codec-comparison truth: ``n_contents`` images x 2 bitrates ("low", "high"), five
    loss-function conditions each; keys are (content, bitrate) tuples for :func:`simulate_votes`.
    """
    rng = np.random.default_rng(seed)
    losses = ["mse", "ms-ssim", "lpips", "dists", "ssim"]
    truth = {}
    for c in range(n_contents):
        for br in ("low", "high"):
            truth[(f"img{c + 1:02d}", br)] = {m: float(rng.normal(0, 0.8)) for m in losses}
    return truth
