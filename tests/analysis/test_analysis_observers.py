"""Simulated observers with a known answer (analysis/observers.py) and the study simulator hookup."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lossarena.analysis.observers import ObserverModel, draw_observers, truth_from_metric, truth_from_mixture
from lossarena.analysis.power import Design, _simulate
from lossarena.analysis.thurstone import fit_thurstone
from scipy.stats import pearsonr


def test_honest_observer_is_thurstone_case_v():
    o = draw_observers(["a"], ObserverModel(noise_sd=(1, 1), bias_sd=0, careless={}), 0)["a"]
    assert o.kind == "honest"
    assert float(o.p_left(1.0, 0.0)) == pytest.approx(0.75, abs=1e-4)  # 1 JOD = 75 %
    assert float(o.p_left(0.0, 0.0)) == pytest.approx(0.5)
    rng = np.random.default_rng(1)
    m = ObserverModel(noise_sd=(1, 1), bias_sd=0, careless={})
    share = np.mean([o.answer(1.0, 0.0, rng, m)[0] == "left" for _ in range(20000)])
    assert share == pytest.approx(0.75, abs=0.01)


def test_panel_shares_kinds_and_seed():
    m = ObserverModel(careless={"random": 0.1, "always_left": 0.2, "too_fast": 0.05})
    ids = [f"p{i}" for i in range(100)]
    p1, p2, p3 = draw_observers(ids, m, 3), draw_observers(ids, m, 3), draw_observers(ids, m, 4)
    kinds = pd.Series([o.kind for o in p1.values()]).value_counts()
    assert kinds["random"] == 10 and kinds["always_left"] == 20 and kinds["too_fast"] == 5 and kinds["honest"] == 65
    assert p1 == p2 and p1 != p3
    rng = np.random.default_rng(0)
    fast = next(o for o in p1.values() if o.kind == "too_fast")
    left = next(o for o in p1.values() if o.kind == "always_left")
    assert all(fast.response_time_ms(rng, m) < 500 for _ in range(50))
    assert all(left.answer(5.0, -5.0 if k % 2 else 5.0, rng, m)[0] == "left" for k in range(20))
    assert left.answer_trap("right", rng, m)[0] == "left"


@pytest.mark.parametrize("bad", [dict(noise_sd=(0, 1)), dict(bias_sd=-1), dict(careless={"lazy": 0.1}),
                                 dict(careless={"random": 0.7, "too_fast": 0.5}), dict(trap_pass=2)])
def test_model_rejects_bad_values(bad):
    with pytest.raises(ValueError, match="expected"):
        ObserverModel(**bad)


def test_truth_from_metric_direction_and_spread():
    df = pd.DataFrame({"content": ["a"] * 3 + ["b"] * 3, "group": ["0.1"] * 6, "condition": list("xyz") * 2,
                       "value": [0.1, 0.2, 0.4, 0.3, 0.5, 0.9]})
    t = truth_from_metric(df, higher_is_better=False, jod_spread=2.0)
    q = np.array(list(t.values()))
    assert q.std() == pytest.approx(2.0) and q.mean() == pytest.approx(0.0, abs=1e-12)
    assert t[("a", "0.1", "x")] > t[("a", "0.1", "y")] > t[("a", "0.1", "z")]  # lower-is-better: x best
    t2 = truth_from_metric(df, higher_is_better=True)
    assert t2[("a", "0.1", "z")] > t2[("a", "0.1", "x")]
    mix = truth_from_mixture({"m1": df, "m2": df}, {"m1": 1, "m2": 0}, {"m1": True, "m2": False}, 3.0)
    assert np.corrcoef(list(mix.values()), list(t2.values()))[0, 1] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="expected"):
        truth_from_metric(df.assign(value=1.0), higher_is_better=True)


def test_recovered_scale_matches_the_truth_and_careless_votes_compress_it():
    truth = {f"c{i}": q for i, q in enumerate([-2.0, -1.2, -0.5, 0.0, 0.6, 1.5, 2.2])}
    d = Design([truth], trials_per_participant=60, sampling="full")
    pairs = d.pairs()
    names = sorted(truth)

    def fit(model, n=300, seed=0):
        votes, wins = _simulate(d, pairs, n, model, np.random.default_rng(seed))
        c = np.zeros((7, 7))
        for (_, i, j), v, w in zip(pairs, votes, wins):
            c[i, j] += w
            c[j, i] += v - w
        return fit_thurstone(c, names).scores

    q_true = np.array([truth[n] for n in names])
    honest = fit(ObserverModel(noise_sd=(1, 1), bias_sd=0.3, careless={}))
    assert pearsonr(honest, q_true)[0] > 0.99
    assert np.abs(honest - q_true).mean() < 0.15  # same units: JOD
    sloppy = fit(ObserverModel(noise_sd=(1, 1), bias_sd=0.3, careless={"random": 0.5}))
    slope = np.polyfit(q_true, sloppy, 1)[0]
    assert 0.3 < slope < 0.75  # half the panel at chance flattens the scale (expected ~0.5)
