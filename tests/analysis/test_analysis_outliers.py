"""Outlier screening: circular triads (Kendall), zeta, likelihood score, random responders."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lossarena.analysis import circular_triads, filter_votes, scale_votes, score_outliers, simulate_votes
from lossarena.analysis.cli import main as cli_main
from lossarena.analysis.outliers import kendall_d, kendall_dmax


def _tournament(n, bits):
    m = np.zeros((n, n))
    for (i, j), b in zip(itertools.combinations(range(n), 2), bits):
        if b:
            m[i, j] = 1
        else:
            m[j, i] = 1
    return m


@settings(max_examples=60, deadline=None)
@given(st.integers(3, 9).flatmap(lambda n: st.tuples(st.just(n), st.lists(st.booleans(), min_size=n * (n - 1) // 2,
                                                                            max_size=n * (n - 1) // 2))))
def test_cycle_count_equals_kendall_formula_on_complete_tournaments(nb):
    n, bits = nb
    m = _tournament(n, bits)
    d, dmax, complete = circular_triads(m)
    assert complete
    assert d == pytest.approx(kendall_d(m.sum(1)))
    # brute force over all triads
    brute = sum(
        1
        for i, j, k in itertools.combinations(range(n), 3)
        if (m[i, j] and m[j, k] and m[k, i]) or (m[j, i] and m[k, j] and m[i, k])
    )
    assert d == brute
    assert dmax == kendall_dmax(n) and 0 <= d <= dmax


def test_kendall_dmax_values():
    # Kendall & Babington Smith: 1, 2, 5, 8, 14, 20 for n = 3..8
    assert [kendall_dmax(n) for n in range(3, 9)] == [1, 2, 5, 8, 14, 20]
    # the regular tournament of 5 items reaches the maximum
    m = np.zeros((5, 5))
    for i in range(5):
        m[i, (i + 1) % 5] = m[i, (i + 2) % 5] = 1
    assert circular_triads(m)[0] == 5


def test_incomplete_design_normalises_by_compared_triads():
    # 4 conditions; pairs compared: a-b, b-c, a-c (cyclic), c-d  -> 1 compared triad, 1 circular
    m = np.zeros((4, 4))
    m[0, 1] = m[1, 2] = m[2, 0] = 1
    m[2, 3] = 1
    d, dmax, complete = circular_triads(m)
    assert (d, dmax, complete) == (1, 1, False)
    # a tied pair cannot be part of a circular triad
    m[0, 2] = 1  # a-c now 1:1
    assert circular_triads(m)[0] == 0


def test_random_responders_are_caught_and_removing_them_helps():
    truth = {
        f"img{c}": {f"m{i}": float(v) for i, v in enumerate(np.linspace(0, 3, 7) + np.random.default_rng(c).normal(0, 0.2, 7))}
        for c in range(4)
    }
    votes = simulate_votes(truth, n_observers=25, n_random=4, seed=1)
    res = score_outliers(votes, progress=False)
    assert list(res.columns[:5]) == ["participant", "circular_triads", "zeta", "likelihood_score", "is_outlier"]
    flagged = set(res.loc[res["is_outlier"], "participant"])
    rand = {p for p in res["participant"] if p.startswith("rand_")}
    assert rand <= flagged, res.sort_values("likelihood_score").tail(6)
    assert len(flagged - rand) <= 1
    # both criteria separate them
    r = res.set_index("participant")
    assert r.loc[sorted(rand), "zeta"].max() < r.drop(sorted(rand))["zeta"].median()
    assert r.loc[sorted(rand), "likelihood_score"].min() > 1.5

    kept = filter_votes(votes, res)
    assert not kept["participant"].str.startswith("rand_").any()

    def err(v):
        s = scale_votes(v, group_by="content", bootstrap=0, progress=False)
        e = []
        for c, sub in s.groupby("content"):
            t = np.array([truth[c][k] for k in sub["condition"]])
            e.append(np.abs(sub["score"].to_numpy() - (t - t.mean())).mean())
        return float(np.mean(e))

    # random voters compress the scale; removing them brings it back towards the truth
    assert err(kept) < err(votes)


def test_likelihood_score_is_zero_above_first_quartile_and_cli_writes_true_false(tmp_path):
    votes = simulate_votes({"a": 0.0, "b": 1.0, "c": 2.0, "d": 2.5}, n_observers=12, n_random=2, repeats=2, seed=3)
    p = tmp_path / "votes.csv"
    votes.to_csv(p, index=False)
    out = tmp_path / "outliers.csv"
    assert cli_main(["outliers", str(p), "--out", str(out), "--threshold", "0.3", "--loo", "no"]) == 0
    df = pd.read_csv(out, dtype=str)
    assert list(df.columns) == ["participant", "circular_triads", "zeta", "likelihood_score", "is_outlier"]
    assert set(df["is_outlier"]) <= {"true", "false"}
    assert len(df) == 14
    ls = df["likelihood_score"].astype(float)
    assert (ls >= 0).all() and (ls == 0).sum() >= 14 * 3 // 4 - 1
