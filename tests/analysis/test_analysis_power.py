"""Power analysis by simulation (analysis/power.py): the batched fit, monotone precision, known counts."""

from __future__ import annotations

import math

import numpy as np
import pytest
from lossarena.analysis.observers import ObserverModel
from lossarena.analysis.power import (
    Design,
    _binom_two_sided,
    _power_wf,
    fit_thurstone_ridge_batch,
    plan_study,
    plot_plan,
    truth_from_effect,
    truth_from_pilot,
)
from lossarena.analysis.simulate import simulate_votes
from lossarena.analysis.thurstone import fit_thurstone
from scipy import stats


def test_batched_fit_equals_fit_thurstone_ridge():
    rng = np.random.default_rng(0)
    c = rng.integers(0, 25, (20, 6, 6)).astype(float)
    c[:, np.arange(6), np.arange(6)] = 0
    c[5] = np.triu(c[5])  # unanimous answers: finite only through the prior
    q = fit_thurstone_ridge_batch(c)
    for b in range(20):
        ref = fit_thurstone(c[b], prior="ridge", tol=1e-10).scores
        assert np.abs(q[b] - ref).max() < 1e-5


def test_binomial_pvalue_equals_scipy():
    for n in (1, 7, 30):
        for k in range(n + 1):
            assert _binom_two_sided(k, n) == pytest.approx(stats.binomtest(k, n, 0.5).pvalue, rel=1e-9)


def test_wf_power_matches_the_normal_approximation():
    # 0.6 vs 0.4 (difference 0.2): n = ((1.96 * 0.5 + 0.8416 * sqrt(0.24)) / 0.1)^2 ~ 194 votes for 80 %
    n = ((1.959964 * 0.5 + 0.841621 * math.sqrt(0.24)) / 0.1) ** 2
    assert _power_wf(n, 0.2, 0.05) == pytest.approx(0.8, abs=0.03)
    assert _power_wf(n / 4, 0.2, 0.05) < 0.4


def test_plan_is_monotone_reproducible_and_finds_a_count():
    design = Design(truth_from_effect(4, 5, 1.0), trials_per_participant=20, sampling="adjacent")
    model = ObserverModel(careless={})
    r1 = plan_study(design, model=model, participants=[10, 40, 160], replications=12, target_ci=1.0, seed=1)
    r2 = plan_study(design, model=model, participants=[10, 40, 160], replications=12, target_ci=1.0, seed=1)
    assert r1.table.equals(r2.table) and r1.required == r2.required
    t = r1.table.set_index("participants")
    assert t.loc[160, "power_adjacent"] > t.loc[10, "power_adjacent"]
    assert t.loc[160, "ci_width"] < t.loc[10, "ci_width"]
    n = r1.required["adjacent"]
    assert n is not None and 10 < n <= 160
    # the ideal count from the normal approximation (honest Case V observers, effect 1 JOD -> p = 0.75,
    # Holm over 4 pairs is between alpha/4 and alpha): votes per pair in [21, 40] -> participants
    pairs = 4 * 4
    assert 21 * pairs / 20 * 0.6 < n < 40 * pairs / 20 * 1.6
    # CI width shrinks like 1/sqrt(N)
    assert t.loc[40, "ci_width"] / t.loc[160, "ci_width"] == pytest.approx(2.0, rel=0.35)
    assert "participants" in r1.summary()


def test_careless_observers_raise_the_count(tmp_path):
    design = Design(truth_from_effect(3, 4, 0.8), trials_per_participant=20)
    grid = [10, 20, 40, 80, 160, 320]
    clean = plan_study(design, model=ObserverModel(careless={}), participants=grid, replications=10, refine=False)
    sloppy = plan_study(design, model=ObserverModel(careless={"random": 0.4}), participants=grid, replications=10,
                        refine=False)
    assert sloppy.required["adjacent"] > clean.required["adjacent"]
    assert plot_plan(clean, tmp_path / "p.png").stat().st_size > 5000


def test_pilot_truth_recovers_the_spacing():
    truth = {("img1", "0.1"): {"a": 0.0, "b": 1.0, "c": 2.0}, ("img2", "0.1"): {"a": 0.0, "b": 0.5, "c": 3.0}}
    votes = simulate_votes(truth, n_observers=60, design="full", repeats=2, seed=0)
    t, names = truth_from_pilot(votes)
    assert names == ["img1/0.1", "img2/0.1"]
    assert t[0]["c"] - t[0]["a"] == pytest.approx(2.0, abs=0.5)
    with pytest.raises(ValueError, match="expected"):
        Design([{"a": 0.0}])
    with pytest.raises(ValueError, match="expected"):
        plan_study(Design(t), alpha=1.5)


def test_study_plan_cli(tmp_path, capsys):
    import json

    from lossarena.pipeline.cli import main

    rc = main(["study", "plan", "2x1x4", "--effect", "1.0", "--participants", "10,40", "--replications", "3",
               "--json", "--plot", str(tmp_path / "p.png"), "--out", str(tmp_path / "p.csv")])
    assert rc == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["settings"]["groups"] == 2 and out["settings"]["pairs"] == 6
    assert (tmp_path / "p.png").exists() and (tmp_path / "p.csv").exists()
    assert main(["study", "plan", "2x1x4", "--careless", "random=2"]) == 2
    assert main(["study", "plan", "nosuchstudy"]) == 2
