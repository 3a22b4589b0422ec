"""Bradley-Terry through choix, the scores.csv contract, bootstrap, ties, CLI scale."""

from __future__ import annotations

import choix
import numpy as np
import pandas as pd
import pytest
from lossarena.analysis import counts_from_votes, fit_bt, fit_thurstone, scale_votes, simulate_votes
from lossarena.analysis.cli import main as cli_main

from lossarena.errors import InputError


def test_bt_equals_choix_ilsr_pairwise_on_raw_votes():
    rng = np.random.default_rng(0)
    strengths = np.array([0.0, 0.5, 1.2, -0.7, 0.3, 2.0])
    data = []
    for _ in range(600):
        i, j = rng.choice(6, 2, replace=False)
        p = 1 / (1 + np.exp(-(strengths[i] - strengths[j])))
        data.append((i, j) if rng.random() < p else (j, i))
    expected = choix.ilsr_pairwise(6, data, alpha=0.01)
    counts = np.zeros((6, 6))
    for win, lose in data:
        counts[win, lose] += 1
    fit = fit_bt(counts, alpha=0.01)
    np.testing.assert_allclose(fit.scores, expected - expected.mean(), atol=1e-6)
    assert np.corrcoef(fit.scores, strengths)[0, 1] > 0.95


def test_bt_and_thurstone_agree_on_ranking_and_ties_count_half():
    votes = pd.DataFrame(
        {
            "participant": ["p1", "p2", "p3", "p4", "p1", "p2", "p3", "p4", "p1", "p2"],
            "content": ["c"] * 10,
            "condition_a": ["a", "a", "a", "a", "b", "b", "b", "b", "a", "a"],
            "condition_b": ["b", "b", "b", "b", "c", "c", "c", "c", "c", "c"],
            "winner": ["a", "a", "tie", "b", "b", "b", "b", "tie", "a", "a"],
        }
    )
    counts, conds = counts_from_votes(votes)
    assert conds == ["a", "b", "c"]
    assert counts[0, 1] == 2.5 and counts[1, 0] == 1.5
    t = scale_votes(votes, "thurstone", bootstrap=0, progress=False).set_index("condition")
    b = scale_votes(votes, "bt", bootstrap=0, progress=False).set_index("condition")
    assert t.loc["a", "wins"] == 4.5 and t.loc["a", "comparisons"] == 6
    assert t.loc["a", "winning_frequency"] == pytest.approx(0.75)
    assert list(t["score"].sort_values().index) == list(b["score"].sort_values().index) == ["c", "b", "a"]


def test_bootstrap_is_seeded_and_brackets_the_estimate():
    votes = simulate_votes({"a": 0.0, "b": 0.8, "c": 1.5, "d": 1.6}, n_observers=15, seed=2)
    r1 = scale_votes(votes, bootstrap=40, seed=7, progress=False)
    r2 = scale_votes(votes, bootstrap=40, seed=7, progress=False)
    pd.testing.assert_frame_equal(r1, r2)
    assert ((r1["ci_low"] <= r1["score"] + 1e-9) & (r1["score"] <= r1["ci_high"] + 1e-9)).all()
    rb = scale_votes(votes, "bt", bootstrap=40, seed=7, progress=False)
    assert ((rb["ci_low"] < rb["score"]) & (rb["score"] < rb["ci_high"])).all()


def test_unknown_reference_and_method_are_input_errors():
    with pytest.raises(InputError, match="reference"):
        fit_thurstone(np.array([[0, 2], [1, 0]]), ["a", "b"], reference="zz")
    with pytest.raises(InputError, match="method"):
        scale_votes(pd.DataFrame({"participant": ["p"], "content": ["c"], "condition_a": ["a"],
                                  "condition_b": ["b"], "winner": ["a"]}), method="elo")


def test_cli_scale_contract(tmp_path):
    truth = {("img1", "low"): {"x": 0.0, "y": 1.0, "ref": 2.0}, ("img1", "high"): {"x": 0.5, "y": 0.9, "ref": 2.0}}
    votes = simulate_votes(truth, n_observers=8, seed=0)
    p = tmp_path / "votes.csv"
    votes.to_csv(p, index=False)
    out = tmp_path / "scores.csv"
    rc = cli_main(["scale", str(p), "--method", "thurstone", "--group-by", "content,group", "--reference", "ref",
                   "--bootstrap", "20", "--seed", "3", "--out", str(out)])
    assert rc == 0
    df = pd.read_csv(out)
    assert list(df.columns) == ["content", "group", "condition", "score", "ci_low", "ci_high", "wins",
                                "comparisons", "winning_frequency", "component"]
    assert len(df) == 6
    assert (df.loc[df["condition"] == "ref", "score"] == 0).all()
    out2 = tmp_path / "bt.csv"
    assert cli_main(["scale", str(p), "--method", "bt", "--bootstrap", "0", "--out", str(out2)]) == 0
    assert list(pd.read_csv(out2).columns)[:2] == ["condition", "score"]
    with pytest.raises(InputError, match="group-by"):
        cli_main(["scale", str(p), "--group-by", "bitrate", "--out", str(out2)])
