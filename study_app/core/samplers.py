"""Pair samplers: which pair a participant sees next. One registry, :data:`SAMPLERS`.

Every sampler gets the participant's session as a list of :class:`GroupState` (one per content ×
target bitrate, with the global count matrix of all votes so far and the pairs this participant has
already been shown) and a seeded ``numpy`` generator, and returns a :class:`Choice` or ``None``
when nothing is left for this participant. A pair already shown to the participant is never offered
again (for any sampler): that is the store's unique constraint too.

``adjacent`` — the seed's rule (iterative, adjacent pairs only):

1. For every group of the participant's session, order its conditions by the current quality
   estimate, ascending: Thurstone Case V scores fitted (ridge prior) on all votes of that group so
   far, via :func:`lossarena.analysis.thurstone.fit_thurstone`; conditions never compared count as
   score 0. If the analysis package cannot be imported, the estimate is the smoothed win rate
   ``(wins + 1) / (comparisons + 2)`` (ties count one half). Equal estimates are ordered by name.
2. The candidate pairs of a group are its ``n - 1`` adjacent pairs ``(o[k], o[k+1])`` in that order
   which this participant has not been shown.
3. Among the candidates of all groups, pick the one with the smallest key
   ``(participant's trials in that group, global comparisons of that pair, random)``: spread each
   participant over the groups, then even out the global counts, then break ties at random.
4. No candidate left: the participant is done with the sampler.

In a live study the fit of a group made at n comparisons is reused until the group has
``max(5, f * n)`` more comparisons, f = ``estimate_refresh_fraction`` (config, default 0.1; 0 =
refit on every new vote, as the simulation tests do): a maximum-likelihood fit per request would dominate the server's CPU
with hundreds of participants, and a 10 % change in the counts barely moves the order. The rule
depends only on the counts, not on time, so simulations are reproducible.

``full`` — all ``n(n-1)/2`` pairs of each group, chosen by the same key as ``adjacent``.

``active`` — ASAP-style expected information gain (Mikhailiuk et al., 2020, "Active sampling for
pairwise comparisons via approximate message passing and information gain maximization"). Per group
a Gaussian posterior over the Thurstone scores (prior N(0, 1) per score, probit likelihood
Phi(q_i - q_j)) is found by Laplace's approximation (Newton's method to the MAP, covariance = inverse
Hessian). For every pair not yet shown to the participant the expected KL divergence between the
one-observation-updated posterior and the current one is computed (outcome probabilities from the
posterior predictive; the update is one Newton step, a rank-one precision update), and the pair with
the largest expected gain over all groups is chosen (ties at random). ASAP itself uses TrueSkill
message passing for the posterior; the Laplace approximation is exact enough for the handful of
conditions per group here and needs no extra dependency.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from lossarena.analysis.thurstone import fit_thurstone  # a layer below: no guard, a bug there fails loudly
from scipy.special import log_ndtr, ndtr

from lossarena.registry import Registry


def pair_key(a: str, b: str) -> str:
    """Order-independent key of a pair of conditions."""
    x, y = sorted((a, b))
    return f"{x}\x1f{y}"


@dataclass
class GroupState:
    content: str
    group: str
    conditions: list[str]
    wins: np.ndarray  # wins[i, j] = times i preferred over j (ties: 1/2 each), all participants
    seen: set[str] = field(default_factory=set)  # pair keys this participant has been shown
    participant_trials: int = 0

    @property
    def n(self) -> int:
        return len(self.conditions)

    def comparisons(self, i: int, j: int) -> float:
        return float(self.wins[i, j] + self.wins[j, i])


@dataclass(frozen=True)
class Choice:
    content: str
    group: str
    a: str
    b: str


def estimate_scores(wins: np.ndarray) -> np.ndarray:
    """Current quality estimate per condition (higher = better); see the module docstring."""
    w = np.ascontiguousarray(wins, dtype=float)
    if w.sum() == 0:
        return np.zeros(w.shape[0])
    return np.array(_cached_scores(w.shape[0], w.tobytes()))


@functools.lru_cache(maxsize=4096)
def _cached_scores(n: int, buf: bytes) -> tuple[float, ...]:
    wins = np.frombuffer(buf, dtype=float).reshape(n, n)
    s = np.asarray(fit_thurstone(wins, prior="ridge").scores, dtype=float)
    s = np.where(np.isfinite(s), s, 0.0)
    return tuple(map(float, s))


def win_rate(wins: np.ndarray) -> np.ndarray:
    w = wins.sum(axis=1)
    c = wins.sum(axis=1) + wins.sum(axis=0)
    return (w + 1.0) / (c + 2.0)


def ordering(state: GroupState, scores: np.ndarray | None = None) -> list[int]:
    """Condition indices in ascending order of the current estimate (ties by name)."""
    s = estimate_scores(state.wins) if scores is None else scores
    return sorted(range(state.n), key=lambda i: (round(float(s[i]), 9), state.conditions[i]))


class Sampler:
    name = "base"

    def candidates(self, state: GroupState) -> list[tuple[int, int]]:
        raise NotImplementedError

    def choose(self, groups: Sequence[GroupState], rng: np.random.Generator) -> Choice | None:
        # groups in tiers of the participant's trials in them: the first element of the key decides,
        # so later tiers are only looked at when an earlier one has no candidate (saves fits)
        best = None
        for tier in sorted({g.participant_trials for g in groups}):
            for g in groups:
                if g.participant_trials == tier:
                    best = self._best_in(g, rng, best)
            if best is not None:
                break
        if best is None:
            return None
        _, g, i, j = best
        return Choice(g.content, g.group, g.conditions[i], g.conditions[j])

    def _best_in(self, g: GroupState, rng, best):
        if len(g.seen) >= g.n * (g.n - 1) // 2:  # nothing can be new here
            return best
        for i, j in self.candidates(g):
            if pair_key(g.conditions[i], g.conditions[j]) in g.seen:
                continue
            key = (g.participant_trials, g.comparisons(i, j), float(rng.random()))
            if best is None or key < best[0]:
                best = (key, g, i, j)
        return best


SAMPLERS: Registry[type[Sampler]] = Registry("sampler")


@SAMPLERS.register("adjacent", aliases=("seed",))
class AdjacentSampler(Sampler):
    """Adjacent pairs in the current estimated order (the seed's method; rule in the module docstring)."""

    name = "adjacent"

    def __init__(self, refresh_fraction: float = 0.0, refresh_min: int = 5):
        self.refresh_fraction = float(refresh_fraction)
        self.refresh_min = int(refresh_min)
        self._cache: dict[tuple[str, str], tuple[float, np.ndarray]] = {}
        self._lock = threading.Lock()

    def scores(self, state: GroupState) -> np.ndarray:
        """The group's estimate. With ``refresh_fraction`` f > 0 the last fit (made at n comparisons)
        is reused until the group has ``max(refresh_min, f * n)`` more comparisons; f = 0 refits on
        every change (the counts are a cache key either way)."""
        if self.refresh_fraction <= 0:
            return estimate_scores(state.wins)
        key, total = (state.content, state.group), float(state.wins.sum())
        with self._lock:
            hit = self._cache.get(key)
        if (hit is not None and hit[1].shape[0] == state.n and hit[0] <= total
                and total < hit[0] + max(self.refresh_min, self.refresh_fraction * hit[0])):
            return hit[1]
        s = estimate_scores(state.wins)
        with self._lock:
            self._cache[key] = (total, s)
        return s

    def candidates(self, state):
        o = ordering(state, self.scores(state))
        return [(o[k], o[k + 1]) for k in range(state.n - 1)]


@SAMPLERS.register("full", aliases=("all",))
class FullSampler(Sampler):
    """Every pair of every group (n(n-1)/2 per group)."""

    name = "full"

    def candidates(self, state):
        return [(i, j) for i in range(state.n) for j in range(i + 1, state.n)]


def laplace_posterior(wins: np.ndarray, prior_var: float = 1.0, iters: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """MAP scores and covariance of the probit Thurstone model with a N(0, prior_var) prior."""
    n = wins.shape[0]
    mu = np.zeros(n)
    ii, jj = np.nonzero(wins)
    cnt = wins[ii, jj]
    for _ in range(iters):
        d = mu[ii] - mu[jj]
        # d/dd log Phi(d) and its negative second derivative
        r = np.exp(-0.5 * d * d - log_ndtr(d)) / np.sqrt(2 * np.pi)
        g1 = cnt * r
        h1 = cnt * r * (d + r)
        grad = -mu / prior_var
        np.add.at(grad, ii, g1)
        np.add.at(grad, jj, -g1)
        H = np.eye(n) / prior_var
        np.add.at(H, (ii, ii), h1)
        np.add.at(H, (jj, jj), h1)
        np.add.at(H, (ii, jj), -h1)
        np.add.at(H, (jj, ii), -h1)
        step = np.linalg.solve(H, grad)
        mu = mu + step
        if np.max(np.abs(step)) < 1e-8:
            break
    d = mu[ii] - mu[jj]
    r = np.exp(-0.5 * d * d - log_ndtr(d)) / np.sqrt(2 * np.pi)
    h1 = cnt * r * (d + r)
    H = np.eye(n) / prior_var
    np.add.at(H, (ii, ii), h1)
    np.add.at(H, (jj, jj), h1)
    np.add.at(H, (ii, jj), -h1)
    np.add.at(H, (jj, ii), -h1)
    return mu, np.linalg.inv(H)


def _kl_gauss(mu1, S1, mu0, P0, logdet0) -> float:
    """KL(N(mu1, S1) || N(mu0, S0)) with S0's precision P0 and log-determinant given."""
    n = mu1.shape[0]
    dm = mu1 - mu0
    _, logdet1 = np.linalg.slogdet(S1)
    return 0.5 * (np.trace(P0 @ S1) + dm @ P0 @ dm - n + logdet0 - logdet1)


def expected_information_gain(mu: np.ndarray, S: np.ndarray, i: int, j: int) -> float:
    """E_y[KL(posterior after observing y on (i, j) || current posterior)], y in {i wins, j wins}."""
    n = mu.shape[0]
    u = np.zeros(n)
    u[i], u[j] = 1.0, -1.0
    P0 = np.linalg.inv(S)
    _, logdet0 = np.linalg.slogdet(S)
    m = mu[i] - mu[j]
    v = u @ S @ u
    p_i = float(ndtr(m / np.sqrt(1.0 + v)))
    eig = 0.0
    for y, py in ((1.0, p_i), (-1.0, 1.0 - p_i)):
        d = y * m
        r = float(np.exp(-0.5 * d * d - log_ndtr(d)) / np.sqrt(2 * np.pi))
        g = y * r  # d/dm log Phi(y m)
        w = r * (d + r)  # -d2/dm2 log Phi(y m)
        P1 = P0 + w * np.outer(u, u)
        S1 = np.linalg.inv(P1)
        mu1 = mu + S1 @ (u * g)
        eig += py * _kl_gauss(mu1, S1, mu, P0, logdet0)
    return float(eig)


@SAMPLERS.register("active", aliases=("asap", "eig"))
class ActiveSampler(Sampler):
    """Expected-information-gain selection (ASAP-style; details in the module docstring)."""

    name = "active"

    def choose(self, groups, rng):
        best = None
        for g in groups:
            mu, S = laplace_posterior(g.wins)
            for i in range(g.n):
                for j in range(i + 1, g.n):
                    if pair_key(g.conditions[i], g.conditions[j]) in g.seen:
                        continue
                    key = (-round(expected_information_gain(mu, S, i, j), 12), float(rng.random()))
                    if best is None or key < best[0]:
                        best = (key, g, i, j)
        if best is None:
            return None
        _, g, i, j = best
        return Choice(g.content, g.group, g.conditions[i], g.conditions[j])


def get_sampler(name: str, **kw) -> Sampler:
    cls = SAMPLERS.get(name)
    import inspect

    params = inspect.signature(cls).parameters
    return cls(**{k: v for k, v in kw.items() if k in params})
