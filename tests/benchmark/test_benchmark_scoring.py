"""2AFC score, accuracy, bootstrap CIs, the always-majority and human-ceiling rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lossarena.benchmark import scoring as S


def test_score_definitions():
    pref = np.array([1.0, 0.0, 0.5, 1.0, 0.0])
    p_a = np.array([0.8, 0.8, 0.3, 0.5, 0.0])
    score, acc = S.per_triplet_scores(pref, p_a)
    assert score.tolist() == pytest.approx([0.8, 0.2, 0.5, 0.5, 1.0])
    assert acc.tolist() == pytest.approx([1.0, 0.0, 0.5, 0.5, 1.0])


def test_preference_direction():
    # lower-better: the smaller value wins; higher-better: the larger; equal -> tie; NaN -> tie
    assert S.preference_from_values([1, 2, 3, np.nan], [2, 1, 3, 1], lower_better=True).tolist() == [1, 0, .5, .5]
    assert S.preference_from_values([1, 2, 3], [2, 1, 3], lower_better=False).tolist() == [0, 1, .5]
    assert S.preference_from_prob([0.9, 0.1, 0.5]).tolist() == [1, 0, 0.5]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([0.0, 0.5, 1.0]), st.floats(0, 1)), min_size=1, max_size=40))
def test_swapping_a_and_b_changes_nothing(rows):
    pref = np.array([r[0] for r in rows])
    p = np.array([r[1] for r in rows])
    s1, a1 = S.per_triplet_scores(pref, p)
    s2, a2 = S.per_triplet_scores(1 - pref, 1 - p)
    assert np.allclose(s1, s2) and np.allclose(a1, a2)
    assert np.all((s1 >= 0) & (s1 <= 1))


def test_bootstrap_ci_is_seeded_and_brackets_the_mean():
    rng = np.random.default_rng(0)
    v = rng.binomial(1, 0.7, 300).astype(float)
    lo, hi = S.bootstrap_ci(v, 500, seed=3)
    assert (lo, hi) == S.bootstrap_ci(v, 500, seed=3)
    assert lo < v.mean() < hi
    # the width is about 2 * 1.96 * sqrt(p(1-p)/n)
    assert (hi - lo) == pytest.approx(2 * 1.96 * np.sqrt(0.21 / 300), rel=0.25)


def _frame(rows):
    return pd.DataFrame(rows, columns=["reference", "a", "b", "p_a"])


def test_always_majority_and_ceiling():
    df = _frame([("r", "x", "y", 1.0), ("r", "y", "x", 1.0),  # contradictory: x vs y both ways
                 ("r", "x", "z", 1.0), ("r", "x", "z", 1.0), ("r", "z", "x", 1.0),  # 2 of 3 for x
                 ("q", "u", "v", 0.0)])
    p = df["p_a"].to_numpy()
    assert S.majority_side(p) == 1.0
    assert S.always_majority_pref(p).tolist() == [1.0] * 6
    ceil = S.human_ceiling_pref(df)
    assert ceil.tolist() == [0.5, 0.5, 1.0, 1.0, 0.0, 0.0]
    r = S.summarize("human-ceiling", ceil, p, n_boot=0)
    assert r.accuracy == pytest.approx((0.5 + 0.5 + 1 + 1 + 0 + 1) / 6)
    assert S.has_repeated_judgments(df)
    assert not S.has_repeated_judgments(_frame([("r", "x", "y", 1.0), ("r", "x", "z", 0.0)]))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 3), st.integers(0, 3), st.sampled_from([0.0, 1.0])),
                min_size=1, max_size=40),
       st.lists(st.floats(0, 1), min_size=4, max_size=4))
def test_no_consistent_predictor_beats_the_ceiling(rows, quality):
    rows = [(f"r{r}", f"i{a}", f"i{b}", p) for r, a, b, p in rows if a != b]
    if not rows:
        return
    df = _frame(rows)
    p = df["p_a"].to_numpy()
    # any metric is consistent: its value for an image does not depend on the row
    val = {f"i{k}": q for k, q in enumerate(quality)}
    pref = S.preference_from_values(df["a"].map(val), df["b"].map(val), lower_better=True)
    metric = S.summarize("m", pref, p, n_boot=0)
    ceil = S.summarize("c", S.human_ceiling_pref(df), p, n_boot=0)
    assert metric.score_2afc <= ceil.score_2afc + 1e-12
    assert metric.accuracy <= ceil.accuracy + 1e-12
