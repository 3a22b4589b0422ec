"""Thurstone Case V / JOD scaling: parity with pwcmp's MATLAB output, gradients, components, recovery."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lossarena.analysis import (
    fit_thurstone,
    jod_to_probability,
    probability_to_jod,
    read_any,
    scale_votes,
    simulate_votes,
)
from lossarena.analysis.thurstone import _Objective
from lossarena.analysis.votes import encode_votes
from scipy import optimize

from lossarena.paths import require_shared


def test_one_jod_is_75_percent():
    assert jod_to_probability(1.0) == pytest.approx(0.75, abs=1e-4)
    assert probability_to_jod(0.75) == pytest.approx(1.0, abs=1e-3)
    assert jod_to_probability(-2.0) == pytest.approx(1 - jod_to_probability(2.0))


@pytest.mark.parametrize("prior", ["gaussian", "ridge", "none"])
def test_analytic_gradient_matches_finite_differences(prior):
    rng = np.random.default_rng(1)
    m = rng.integers(0, 6, (6, 6)).astype(float)
    m[0, 1], m[1, 0] = 4, 0  # a unanimous pair
    np.fill_diagonal(m, 0)
    obj = _Objective(m, prior, 2.0)
    for _ in range(3):
        q = rng.normal(0, 1.5, 6)
        err = optimize.check_grad(lambda z: obj(z)[0], lambda z: obj(z)[1], q)
        assert err < 1e-4 * max(1.0, np.abs(obj(q)[1]).max())


def _ref_tables():
    d = require_shared("pairwise", "pwcmp", "ex3_tmo_cmp_data_2022_for_ref_output.csv")
    r = require_shared("pairwise", "pwcmp", "ex3_tmo_cmp_scaled_ref_output_2022.csv")
    return d, pd.read_csv(r)


def _max_diff_per_scene(votes: pd.DataFrame, ref: pd.DataFrame, **kw) -> dict[str, float]:
    out = {}
    for scene in ["all"] + sorted(votes["content"].unique()):
        sub = votes if scene == "all" else votes[votes["content"] == scene]
        enc = encode_votes(sub)
        fit = fit_thurstone(enc.counts(), enc.conditions, **kw)
        r = ref[ref["scene"] == scene].set_index("tmo").loc[enc.conditions, "jod"].to_numpy()
        d = fit.scores - r
        out[scene] = float(np.abs(d - d.mean()).max())  # after aligning means (both are mean-0 already)
    return out


def test_jod_parity_with_pwcmp_matlab_reference():
    """pwcmp's 2022 example output (pw_scale_table, Gaussian distance prior, mean-0) is reproduced.

    The reference was computed reading ``selection`` as "condition_1 chosen" (see SOURCE.txt), so the
    2022 file is read with ``selection_means="condition_1"``. Target 0.1 JOD; we match to ~1e-5 in
    every scene, including ``exhibition`` where near-unanimous pairs let the prior dominate: the prior
    is the same function as pw_scale.m's (the normalised sum of unanimity-shifted binomial likelihoods
    over the compared ordered pairs, + 0.1, with the likelihood counted over ordered pairs), so it pulls
    the unanimous pairs to the same finite distances.
    """
    path, ref = _ref_tables()
    votes = read_any(path, format="pwcmp-2022", selection_means="condition_1")
    diffs = _max_diff_per_scene(votes, ref, prior="gaussian")
    assert set(diffs) == {"all", "corridor", "exhibition", "rivoli", "students", "window"}
    for scene, d in diffs.items():
        assert d < 1e-3, f"{scene}: max JOD difference {d:.4f}"


def test_prior_matters_where_pairs_are_unanimous():
    """Without the prior, the unanimous pairs of ``exhibition`` (6 one-sided pairs) drift apart: the
    maximum difference to MATLAB grows to ~0.4 JOD there, while scenes with at most one unanimous pair
    stay within 0.1 JOD. This is the difference the issue asks to explain."""
    path, ref = _ref_tables()
    votes = read_any(path, format="pwcmp-2022", selection_means="condition_1")
    diffs = _max_diff_per_scene(votes, ref, prior="none")
    assert diffs["exhibition"] > 0.2
    assert diffs["window"] < 0.1 and diffs["all"] < 0.1


def test_2025_file_gives_the_mirrored_scale():
    """The corrected 2025 data (is_A_selected = 1 - selection) is the same votes with the true orientation:
    its JOD are exactly the negated reference values."""
    d = require_shared("pairwise", "pwcmp", "ex3_tmo_cmp_data.csv")
    _, ref = _ref_tables()
    votes = read_any(d)
    assert votes.attrs["format"] == "pwcmp"
    sub = votes[votes["content"] == "rivoli"]
    enc = encode_votes(sub)
    fit = fit_thurstone(enc.counts(), enc.conditions)
    r = ref[ref["scene"] == "rivoli"].set_index("tmo").loc[enc.conditions, "jod"].to_numpy()
    np.testing.assert_allclose(fit.scores, -r, atol=1e-3)


def test_reference_condition_and_mean_zero():
    m = np.array([[0, 8, 9], [2, 0, 7], [1, 3, 0]], float)
    f0 = fit_thurstone(m, ["a", "b", "c"])
    assert f0.scores.mean() == pytest.approx(0, abs=1e-9)
    f1 = fit_thurstone(m, ["a", "b", "c"], reference="c", reference_value=10.0)
    assert f1.scores[2] == pytest.approx(10.0)
    np.testing.assert_allclose(np.diff(f1.scores), np.diff(f0.scores), atol=1e-5)
    assert f0.scores[0] > f0.scores[1] > f0.scores[2]


def test_disconnected_graph_is_scaled_per_component():
    m = np.zeros((5, 5))
    m[0, 1], m[1, 0] = 6, 2  # component {0, 1}
    m[2, 3], m[3, 2], m[3, 4], m[4, 3], m[2, 4] = 5, 3, 4, 4, 6  # component {2, 3, 4}
    fit = fit_thurstone(m, list("abcde"))
    assert fit.n_components == 2 and not fit.connected
    assert fit.component.tolist() == [1, 1, 0, 0, 0]  # 0 = the largest
    for k in (0, 1):
        assert fit.scores[fit.component == k].mean() == pytest.approx(0, abs=1e-6)
    # a condition never compared gets NaN, not a number
    m2 = np.zeros((3, 3))
    m2[0, 1], m2[1, 0] = 3, 1
    f2 = fit_thurstone(m2, list("xyz"))
    assert np.isnan(f2.scores[2]) and f2.component[2] == -1


def test_scale_votes_reports_components():
    votes = pd.DataFrame(
        {
            "participant": ["p1", "p1", "p2", "p2", "p3", "p3"],
            "content": ["c"] * 6,
            "condition_a": ["a", "c", "a", "c", "b", "d"],
            "condition_b": ["b", "d", "b", "d", "a", "c"],
            "winner": ["a", "c", "a", "d", "b", "c"],
        }
    )
    res = scale_votes(votes, group_by="content", bootstrap=0, progress=False)
    assert list(res.columns) == ["content", "condition", "score", "ci_low", "ci_high", "wins", "comparisons",
                                 "winning_frequency", "component"]
    assert sorted(res["component"].unique()) == [0, 1]


def test_recovers_known_scores_from_simulated_observers():
    truth = {f"q{i}": float(v) for i, v in enumerate([0.0, 0.4, 1.1, 1.5, 2.4, 3.0])}
    votes = simulate_votes(truth, n_observers=40, repeats=1, seed=5)
    res = scale_votes(votes, group_by="content", bootstrap=60, seed=1, progress=False)
    t = np.array([truth[c] for c in res["condition"]])
    t -= t.mean()
    err = np.abs(res["score"].to_numpy() - t)
    assert err.max() < 0.35, err
    covered = ((res["ci_low"] <= t) & (t <= res["ci_high"])).mean()
    assert covered >= 4 / 6
    assert (res["ci_high"] - res["ci_low"]).gt(0).all()


def test_hdr_vdc_scales_agree_with_the_published_jod():
    """HDR-VDC's JOD come from its own MATLAB script (pwcmp with bootstrap, references of each scene tied
    at 10 JOD), so only the shape is compared: per scene x display, correlation with the published
    values after removing the mean (measured: mean 0.997, min 0.987)."""
    folder = require_shared("pairwise", "hdr_vdc_pairwise")
    votes = read_any(folder)
    ours = scale_votes(votes, "thurstone", "content,group", bootstrap=0, progress=False)
    ref = pd.read_csv(folder / "scaled_jod_scores.csv")
    m = ours.merge(ref, left_on=["content", "condition"], right_on=["scene", "condition"])
    assert len(m) == len(ref) == 528
    corr = m.groupby(["content", "group"]).apply(lambda d: np.corrcoef(d["score"], d["jod"])[0, 1])
    assert len(corr) == 32 and corr.min() > 0.98 and corr.mean() > 0.99


@pytest.mark.parametrize(
    "variable, column",
    [
        ("15degps_ET_target", "JOD_15degps_ET_target"),
        ("23degps_unpredictable", "JOD_23degps_unpredictable"),
        ("30degps_panorama", "JOD_30degps_panorama"),
    ],
)
def test_motion_quality_count_matrices_reproduce_published_jod(variable, column):
    """motion_quality_20: the published JOD (relative to 50 fps = row 1) of three motion conditions are
    reproduced to 1e-5 from the .mat count matrices with pwcmp's prior (87-106 unanimous ordered pairs
    each, so the prior matters: without it they differ by 0.6-1.0 JOD). The three ``*_perdictable``
    matrices do not match their published columns (0.3-0.7 JOD off, also under any permutation of the
    columns), so the published predictable-motion scales were not computed from exactly these matrices."""
    from scipy.io import loadmat

    mat = loadmat(require_shared("pairwise", "motion_quality_20", "pairwise_comparison_matrices.mat"))
    ref = pd.read_csv(require_shared("pairwise", "motion_quality_20", "exp1_scaled_results.csv"))
    counts = mat[f"pwc_mat_{variable}"].astype(float)
    fit = fit_thurstone(counts, [str(f) for f in ref["FPS"]], prior="gaussian", reference="50")
    np.testing.assert_allclose(fit.scores, ref[column].to_numpy(), atol=1e-3)
    plain = fit_thurstone(counts, prior="none", reference="c0")
    assert np.abs(plain.scores - ref[column].to_numpy()).max() > 0.3


def test_jod_covariance_is_the_inverse_observed_information():
    from lossarena.analysis import jod_covariance

    rng = np.random.default_rng(3)
    m = rng.integers(1, 12, (5, 5)).astype(float)
    np.fill_diagonal(m, 0)
    fit = fit_thurstone(m, prior="none")
    cov = jod_covariance(m, fit.scores)
    obj = _Objective(m, "none", 3.0)
    eps = 1e-5
    hess = np.array([(obj(fit.scores + eps * e)[1] - obj(fit.scores - eps * e)[1]) / (2 * eps) for e in np.eye(5)])
    proj = np.eye(5) - 1 / 5  # the mean-0 gauge
    np.testing.assert_allclose(np.linalg.pinv(cov, hermitian=True), proj @ hess @ proj, atol=1e-4)
    assert np.allclose(cov.sum(axis=1), 0, atol=1e-9) and (np.diag(cov) > 0).all()
