"""Sampler properties by simulation: no repeats, adjacency (``adjacent``), and how fast the recovered
ranking converges to the truth (Kendall tau against the number of trials)."""

from __future__ import annotations

import numpy as np
import pytest
from lossarena.study_app.core.samplers import (
    SAMPLERS,
    GroupState,
    expected_information_gain,
    get_sampler,
    laplace_posterior,
    ordering,
    pair_key,
)
from scipy.special import ndtr
from scipy.stats import kendalltau

N_COND = 6
CHECKPOINTS = (15, 45, 120)


def run(name: str, seed: int, per_participant: int = 5, total: int = CHECKPOINTS[-1], n_groups: int = 1):
    """Simulated Thurstone observers on ``n_groups`` groups; returns ({trials: tau}, log of choices)."""
    rng = np.random.default_rng(seed)
    conds = [f"c{i}" for i in range(N_COND)]
    truth = {g: rng.permutation(np.linspace(-1.5, 1.5, N_COND)) for g in range(n_groups)}
    wins = {g: np.zeros((N_COND, N_COND)) for g in range(n_groups)}
    sampler = get_sampler(name)
    taus, log, done, p = {}, [], 0, 0
    while done < total:
        states = [GroupState("img", str(g), conds, wins[g]) for g in range(n_groups)]
        for _ in range(per_participant):
            before = {s.group: ordering(s) for s in states} if name == "adjacent" else None
            ch = sampler.choose(states, rng)
            if ch is None:
                break
            s = next(x for x in states if x.group == ch.group)
            i, j = conds.index(ch.a), conds.index(ch.b)
            log.append((p, ch.group, pair_key(ch.a, ch.b), before[ch.group] if before else None, i, j,
                        frozenset(s.seen)))
            y = rng.random() < ndtr(truth[int(ch.group)][i] - truth[int(ch.group)][j])
            s.wins[(i, j) if y else (j, i)] += 1
            s.seen.add(pair_key(ch.a, ch.b))
            s.participant_trials += 1
            done += 1
            if done in CHECKPOINTS:
                est = np.concatenate([laplace_posterior(wins[g])[0] for g in range(n_groups)])
                tru = np.concatenate([truth[g] for g in range(n_groups)])
                taus[done] = float(kendalltau(est, tru).statistic)
            if done >= total:
                break
        p += 1
    return taus, log


def test_registry_names():
    assert {"adjacent", "full", "active"} <= set(SAMPLERS.names())
    assert SAMPLERS.canonical("asap") == "active"


@pytest.mark.parametrize("name", ["adjacent", "full", "active"])
def test_no_pair_twice_per_participant(name):
    _, log = run(name, seed=1, per_participant=8, total=80, n_groups=2)
    seen = {}
    for p, g, key, *_ in log:
        assert (g, key) not in seen.setdefault(p, set()), f"participant {p} saw {key} twice"
        seen[p].add((g, key))


def test_adjacent_only_presents_adjacent_pairs():
    _, log = run("adjacent", seed=2, per_participant=6, total=90)
    for _, _, _, order, i, j, _seen in log:
        assert abs(order.index(i) - order.index(j)) == 1


def test_full_covers_every_pair_and_exhausts():
    conds = [f"c{i}" for i in range(4)]
    s = GroupState("x", "g", conds, np.zeros((4, 4)))
    rng = np.random.default_rng(0)
    got = []
    while (ch := get_sampler("full").choose([s], rng)) is not None:
        got.append(pair_key(ch.a, ch.b))
        s.seen.add(got[-1])
        s.participant_trials += 1
    assert sorted(got) == sorted(pair_key(a, b) for k, a in enumerate(conds) for b in conds[k + 1 :])


def test_active_prefers_uncertain_pairs():
    # c0 >> c1 settled by many votes; c2 vs c3 never compared: the gain is larger there
    w = np.zeros((4, 4))
    w[0, 1] = 40
    w[1, 0] = 2
    w[2, 0] = w[0, 2] = w[3, 1] = w[1, 3] = 3
    mu, S = laplace_posterior(w)
    assert expected_information_gain(mu, S, 2, 3) > expected_information_gain(mu, S, 0, 1)
    s = GroupState("x", "g", ["c0", "c1", "c2", "c3"], w)
    ch = get_sampler("active").choose([s], np.random.default_rng(0))
    assert {ch.a, ch.b} != {"c0", "c1"}


@pytest.mark.parametrize("name", ["adjacent", "full", "active"])
def test_ranking_converges_to_truth(name):
    """Kendall tau between the fitted scores and the true ones grows with the number of trials."""
    taus = [run(name, seed=s)[0] for s in (11, 12, 13)]
    mean = {t: float(np.mean([x[t] for x in taus])) for t in CHECKPOINTS}
    print(name, {t: round(v, 3) for t, v in mean.items()})
    assert mean[CHECKPOINTS[-1]] >= 0.75
    assert mean[CHECKPOINTS[-1]] > mean[CHECKPOINTS[0]] + 0.1
