"""Power analysis for pairwise-comparison studies: how many participants a design needs.

Planning happens before paying a crowd platform, so everything is estimated by simulation from a
truth the user states — a pilot's fitted scale (:func:`truth_from_pilot`) or assumed effect sizes
(:func:`truth_from_effect`) — with the same observer model the study simulator uses
(:class:`~lossarena.analysis.observers.ObserverModel`: per-observer noise and side bias, careless
shares). For each candidate number of participants ``N`` the study is replicated ``replications``
times and three precision measures are computed:

``power_adjacent``
    The share of adjacent condition pairs (neighbours in true quality order within a group) that
    the report's test separates in the right direction: the exact two-sided binomial test per pair,
    Holm-corrected within each group (as :func:`~lossarena.analysis.matrices.pairwise_tests`), at
    level ``alpha``.
``ci_width``
    The mean over conditions of the full width of the 95 % interval of a condition's JOD score
    (group mean fixed at 0), from the spread of the fitted Thurstone scores across replications
    (``2 * 1.96 * SD``) — the precision actually reached, observer heterogeneity included.
``power_wf``
    The exact power of the binomial test to detect, on one pair, a winning-frequency difference
    ``wf_diff`` (the better condition wins a share ``0.5 + wf_diff / 2`` of the votes), given the
    votes a pair receives.

The participant count needed is the smallest ``N`` (searched on the grid, then refined by bisection to
within 5 %) with ``power_adjacent >= power`` (and likewise for ``ci_width <= target_ci``
and ``power_wf >= power``). Votes per pair = ``N * trials_per_participant / pairs``: sessions split
the groups but not this ratio. The study's adaptive adjacent sampler is modelled by its ideal — pairs
adjacent in the true order, every pair equally often — so counts are a lower bound when a sampler's
estimate of the order is still poor early on.

References
----------
Perez-Ortiz, M., Mikhailiuk, A., Zerman, E., Hulusic, V., Valenzise, G. & Mantiuk, R. K. (2020).
From pairwise comparisons and rating to a unified quality scale. IEEE TIP 29 (simulation-based
experiment planning in pwcmp).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from ._threads import single_thread
from .observers import ObserverModel, draw_observers
from .thurstone import SIGMA

log = logging.getLogger(__name__)

__all__ = ["Design", "PlanResult", "plan_study", "plot_plan", "truth_from_effect", "truth_from_pilot"]

SAMPLINGS = ("adjacent", "full")


@dataclass(frozen=True)
class Design:
    """A study design: groups of conditions, how pairs are sampled, trials per participant.

    Parameters
    ----------
    truth : list of dict
        One dict per group (content × bitrate): condition -> true JOD score. At least two
        conditions per group.
    trials_per_participant : int
        Comparisons each participant makes (traps not counted), >= 1.
    sampling : str
        ``"adjacent"`` (neighbours in quality order, the seed's sampler) or ``"full"`` (every pair).
    group_names : list of str, optional
        Labels of the groups (for tables).
    """

    truth: list[dict[str, float]]
    trials_per_participant: int = 40
    sampling: str = "adjacent"
    group_names: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.sampling not in SAMPLINGS:
            raise ValueError(f"expected sampling among {', '.join(SAMPLINGS)}, got {self.sampling!r}")
        if self.trials_per_participant < 1:
            raise ValueError(f"expected trials_per_participant >= 1, got {self.trials_per_participant}")
        if not self.truth or any(len(g) < 2 for g in self.truth):
            raise ValueError("expected at least one group with at least two conditions, got "
                             f"{[len(g) for g in self.truth]}")
        for g in self.truth:
            if not all(math.isfinite(float(v)) for v in g.values()):
                raise ValueError(f"expected finite true scores, got {g}")

    def pairs(self) -> list[tuple[int, int, int]]:
        """The compared pairs ``(group, i, j)`` with condition ``i`` truly better than ``j``
        (indices into the group's conditions sorted by name)."""
        out = []
        for gi, g in enumerate(self.truth):
            names = sorted(g)
            q = np.array([g[n] for n in names])
            order = np.argsort(-q, kind="stable")
            if self.sampling == "adjacent":
                out += [(gi, int(order[k]), int(order[k + 1])) for k in range(len(order) - 1)]
            else:
                out += [(gi, int(order[a]), int(order[b])) for a in range(len(order)) for b in range(a + 1, len(order))]
        return out


def truth_from_effect(n_groups: int, n_conditions: int, effect: float = 0.5) -> list[dict[str, float]]:
    """Assumed effect sizes: in every group, conditions ``c0..`` evenly spaced ``effect`` JOD apart.

    Parameters
    ----------
    n_groups, n_conditions : int
        Design size (e.g. 18 groups = 6 images × 3 bitrates, 9 codecs).
    effect : float
        JOD difference between adjacent conditions (> 0); 1 JOD = 75 % preference.

    Returns
    -------
    list of dict
        Per group, condition -> JOD (mean 0).
    """
    if n_groups < 1 or n_conditions < 2 or not effect > 0:
        raise ValueError(f"expected n_groups >= 1, n_conditions >= 2, effect > 0, got {n_groups}, "
                         f"{n_conditions}, {effect}")
    q = (np.arange(n_conditions) - (n_conditions - 1) / 2) * effect
    width = len(str(n_conditions - 1))
    return [{f"c{i:0{width}d}": float(v) for i, v in enumerate(q)} for _ in range(n_groups)]


def truth_from_pilot(votes, group_by: Sequence[str] = ("content", "group")) -> tuple[list[dict[str, float]], list[str]]:
    """A pilot study's fitted Thurstone scale per group, as the truth to plan from.

    Parameters
    ----------
    votes : path or DataFrame
        Canonical votes (``lossarena study export`` output).
    group_by : sequence of str
        Columns that define a group (those present are used).

    Returns
    -------
    (list of dict, list of str)
        Per group condition -> JOD, and the group labels.
    """
    from .scaling import scale_votes
    from .votes import ensure_votes

    v = ensure_votes(votes)
    keys = [k for k in group_by if k in v.columns]
    sc = scale_votes(v, "thurstone", keys, bootstrap=0, progress=False)
    truth, names = [], []
    for key, g in (sc.groupby(keys, sort=True) if keys else [((), sc)]):
        g = g[np.isfinite(g["score"])]
        if len(g) >= 2:
            truth.append(dict(zip(g["condition"].astype(str), g["score"].astype(float))))
            names.append("/".join(map(str, key if isinstance(key, tuple) else (key,))))
    if not truth:
        raise ValueError("expected a pilot with at least one group of two or more compared conditions, got none")
    return truth, names


def _holm(p: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Holm adjustment of ``p`` within each group label (vectorised over replications: ``p`` is
    (reps, pairs))."""
    out = np.empty_like(p)
    for g in np.unique(groups):
        idx = np.flatnonzero(groups == g)
        sub = p[:, idx]
        m = len(idx)
        order = np.argsort(sub, axis=1)
        ranked = np.take_along_axis(sub, order, axis=1) * (m - np.arange(m))
        ranked = np.minimum(np.maximum.accumulate(ranked, axis=1), 1.0)
        back = np.empty_like(ranked)
        np.put_along_axis(back, order, ranked, axis=1)
        out[:, idx] = back
    return out


def _binom_two_sided(k: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Exact two-sided binomial p-value against 1/2 (doubled smaller tail, = scipy's ``binomtest``
    for p = 1/2 where the distribution is symmetric); 1 where n = 0."""
    k, n = np.asarray(k, float), np.asarray(n, float)
    lo = stats.binom.cdf(k, n, 0.5)
    hi = stats.binom.sf(k - 1, n, 0.5)
    p = np.minimum(1.0, 2 * np.minimum(lo, hi))
    return np.where(n > 0, p, 1.0)


def _simulate(design: Design, pairs: list[tuple[int, int, int]], n: int, model: ObserverModel,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One replication: (votes per pair, votes for the truly better condition per pair)."""
    P = len(pairs)
    T = design.trials_per_participant
    names = [sorted(g) for g in design.truth]
    q_good = np.array([design.truth[g][names[g][i]] for g, i, _ in pairs])
    q_bad = np.array([design.truth[g][names[g][j]] for g, _, j in pairs])
    obs = draw_observers([str(i) for i in range(n)], model, int(rng.integers(1 << 31)))
    kinds = np.array([o.kind for o in obs.values()])
    noise = np.array([o.noise for o in obs.values()])[:, None]
    bias = np.array([o.bias for o in obs.values()])[:, None]
    # balanced allocation: participant p answers items (offset_p + t) mod P of a shuffled item order
    perm = rng.permutation(P)
    items = perm[(rng.integers(0, P, size=(n, 1)) + np.arange(T)[None, :]) % P]
    good_left = rng.random((n, T)) < 0.5
    d = q_good[items] - q_bad[items]  # > 0
    # P(choose the better one): left is better -> P(left); right is better -> 1 - P(left)
    z = np.where(good_left, d + bias, d - bias) / (SIGMA * noise)
    p_good = stats.norm.cdf(z)
    careless = kinds != "honest"
    p_good[careless] = 0.5
    left_always = kinds == "always_left"
    p_good[left_always] = np.where(good_left[left_always], 1.0, 0.0)
    won = rng.random((n, T)) < p_good
    votes = np.bincount(items.ravel(), minlength=P)
    wins = np.bincount(items.ravel(), weights=won.ravel(), minlength=P)
    return votes, wins


def fit_thurstone_ridge_batch(counts: np.ndarray, ridge_sd: float = 3.0, iters: int = 30) -> np.ndarray:
    """Thurstone Case V scores (JOD, mean 0) of many small count matrices at once, ridge prior.

    The same objective as :func:`~lossarena.analysis.thurstone.fit_thurstone` with
    ``prior="ridge"`` (negative log-likelihood + ``sum (q - mean q)^2 / (2 ridge_sd^2)``), minimised
    by damped Newton steps batched over the first axis — the planner fits thousands of simulated
    groups, where one L-BFGS call each would dominate. Tested against ``fit_thurstone``.

    Parameters
    ----------
    counts : ndarray, shape (B, N, N)
        ``counts[b, i, j]`` = times i was preferred over j in problem b.
    ridge_sd : float
        Prior SD (JOD), > 0.
    iters : int
        Newton iterations (converges in < 10 for typical problems).

    Returns
    -------
    ndarray, shape (B, N)
    """
    from scipy import special

    c = np.asarray(counts, float)
    B, n, _ = c.shape
    iu, ju = np.triu_indices(n, 1)
    cij, cji = c[:, iu, ju], c[:, ju, iu]
    E = np.zeros((len(iu), n))
    E[np.arange(len(iu)), iu] = 1.0
    E[np.arange(len(iu)), ju] = -1.0
    v = ridge_sd**2
    center = np.eye(n) - 1.0 / n
    gauge = np.ones((n, n)) / n
    q = np.zeros((B, n))
    log_sqrt_2pi = 0.5 * np.log(2 * np.pi)

    def ratio(z):  # phi(z) / Phi(z), stable
        return np.exp(-0.5 * z * z - log_sqrt_2pi - special.log_ndtr(z))

    for _ in range(iters):
        x = (q @ E.T) / SIGMA
        r, m = ratio(x), ratio(-x)
        gx = -(cij * r - cji * m)
        hx = cij * r * (x + r) + cji * m * (-x + m)
        g = (gx @ E) / SIGMA + (q - q.mean(axis=1, keepdims=True)) / v
        H = np.einsum("bp,pi,pj->bij", hx, E, E) / SIGMA**2 + center / v + gauge
        step = np.linalg.solve(H, g[..., None])[..., 0]
        big = np.abs(step).max(axis=1, keepdims=True)
        step = step * np.minimum(1.0, 2.0 / np.maximum(big, 1e-12))  # at most 2 JOD per step
        q = q - step
        if big.max() < 1e-9:
            break
    return q - q.mean(axis=1, keepdims=True)


def _fit_widths(design: Design, pairs, votes_reps: np.ndarray, wins_reps: np.ndarray) -> float:
    """Mean 95 % CI full width of condition scores from the spread of fits across replications."""
    names = [sorted(g) for g in design.truth]
    R = votes_reps.shape[0]
    widths = []
    for gi, g_names in enumerate(names):
        k_idx = np.array([k for k, (g, _, _) in enumerate(pairs) if g == gi])
        ii = np.array([pairs[k][1] for k in k_idx])
        jj = np.array([pairs[k][2] for k in k_idx])
        c = np.zeros((R, len(g_names), len(g_names)))
        np.add.at(c, (slice(None), ii, jj), wins_reps[:, k_idx])  # type: ignore[arg-type]
        np.add.at(c, (slice(None), jj, ii), votes_reps[:, k_idx] - wins_reps[:, k_idx])  # type: ignore[arg-type]
        fits = fit_thurstone_ridge_batch(c)
        widths.append(2 * 1.959964 * fits.std(axis=0, ddof=1))
    return float(np.mean(np.concatenate(widths)))


def _power_wf(votes_per_pair: float, wf_diff: float, alpha: float) -> float:
    """Exact power of the two-sided binomial test on a pair with ``votes_per_pair`` votes (rounded
    down) whose better condition wins a share ``0.5 + wf_diff / 2``."""
    n = int(math.floor(votes_per_pair))
    if n < 1:
        return 0.0
    k = np.arange(n + 1)
    reject = _binom_two_sided(k, np.full_like(k, n)) < alpha
    return float(stats.binom.pmf(k, n, 0.5 + wf_diff / 2)[reject].sum())


@dataclass
class PlanResult:
    """What :func:`plan_study` found.

    Attributes
    ----------
    table : DataFrame
        One row per participant count evaluated: ``participants, votes_per_pair, power_adjacent,
        ci_width, power_wf``.
    required : dict
        Criterion -> smallest participant count meeting it (``None``: not within the searched range):
        ``adjacent`` (power to separate adjacent conditions), ``ci`` (target CI width), ``wf``
        (winning-frequency difference).
    settings : dict
        The inputs (design size, alpha, power, targets, replications, seed).
    """

    table: pd.DataFrame
    required: dict
    settings: dict

    def summary(self) -> str:
        s = self.settings
        lines = [f"design: {s['groups']} groups x {s['conditions']} conditions, {s['sampling']} sampling "
                 f"({s['pairs']} pairs), {s['trials_per_participant']} trials per participant; observers: "
                 f"{s['careless_share']:.0%} careless; {s['replications']} replications per count"]
        r = self.required
        lines.append(_req_line(r["adjacent"], f"separate adjacent conditions (power {s['power']:.0%}, "
                                              f"alpha {s['alpha']:g}, Holm within each group)", s))
        lines.append(_req_line(r["ci"], f"95% CI of each condition's JOD narrower than {s['target_ci']:g} JOD", s))
        if r.get("wf") is not None or s.get("wf_diff"):
            lines.append(_req_line(r["wf"], f"detect a winning-frequency difference of {s['wf_diff']:g} on one "
                                            f"pair (power {s['power']:.0%})", s))
        return "\n".join(lines)


def _req_line(n, what: str, s: dict) -> str:
    if n is None:
        return f"  {what}: more than {s['max_participants']} participants"
    return (f"  {what}: {n} participants ({n * s['trials_per_participant']} trials, "
            f"{n * s['trials_per_participant'] / s['pairs']:.0f} votes per pair)")


class _Evaluator:
    def __init__(self, design: Design, model: ObserverModel, replications: int, alpha: float,
                 wf_diff: float | None, seed: int):
        self.design, self.model, self.R, self.alpha, self.wf_diff, self.seed = (
            design, model, replications, alpha, wf_diff, seed)
        self.pairs = design.pairs()
        self.groups = np.array([g for g, _, _ in self.pairs])
        self.cache: dict[int, dict] = {}

    def __call__(self, n: int) -> dict:
        if n in self.cache:
            return self.cache[n]
        rng = np.random.default_rng([self.seed, n])  # common seed per count: a reproducible table
        sims = [_simulate(self.design, self.pairs, n, self.model, rng) for _ in range(self.R)]
        votes = np.stack([v for v, _ in sims])
        wins = np.stack([w for _, w in sims])
        p = _holm(_binom_two_sided(wins, votes), self.groups)
        sep = (p < self.alpha) & (wins * 2 > votes)
        vpp = n * self.design.trials_per_participant / len(self.pairs)
        row = {"participants": n, "votes_per_pair": vpp, "power_adjacent": float(sep.mean()),
               "ci_width": _fit_widths(self.design, self.pairs, votes, wins),
               "power_wf": _power_wf(vpp, self.wf_diff, self.alpha) if self.wf_diff else float("nan")}
        self.cache[n] = row
        return row


def _smallest(ev: _Evaluator, grid: list[int], ok) -> int | None:
    """Smallest count meeting ``ok`` on the grid, refined by bisection between grid points."""
    prev = 0
    for n in grid:
        if ok(ev(n)):
            lo, hi = prev, n
            while hi - lo > max(1, hi // 20):  # to ~5 %: Monte Carlo noise is larger below that
                mid = (lo + hi) // 2
                if mid < 2:
                    break
                if ok(ev(mid)):
                    hi = mid
                else:
                    lo = mid
            return hi
        prev = n
    return None


@single_thread
def plan_study(design: Design, *, model: ObserverModel | None = None, participants: Sequence[int] | None = None,
               replications: int = 40, alpha: float = 0.05, power: float = 0.8, target_ci: float = 0.6,
               wf_diff: float | None = None, seed: int = 0, refine: bool = True) -> PlanResult:
    """Estimate by simulation the participants a design needs.

    Parameters
    ----------
    design : Design
        Truth per group, sampling and trials per participant.
    model : ObserverModel, optional
        Observer behaviour (default: :class:`ObserverModel` defaults — 18 % careless).
    participants : sequence of int, optional
        Counts to evaluate (default 10, 20, 40, ..., 1280); the answer is refined between them.
    replications : int
        Simulated studies per count (>= 2).
    alpha : float
        Test level in (0, 1).
    power : float
        Target power in (0, 1).
    target_ci : float
        Target full width (JOD) of each condition's 95 % interval, > 0.
    wf_diff : float, optional
        Winning-frequency difference to detect on one pair, in (0, 1].
    seed : int
        Seed: the same inputs give the same table.
    refine : bool
        Bisect between grid points to the nearest participant.

    Returns
    -------
    PlanResult
    """
    if not 0 < alpha < 1 or not 0 < power < 1:
        raise ValueError(f"expected alpha and power in (0, 1), got {alpha}, {power}")
    if not target_ci > 0:
        raise ValueError(f"expected target_ci > 0, got {target_ci}")
    if wf_diff is not None and not 0 < wf_diff <= 1:
        raise ValueError(f"expected wf_diff in (0, 1], got {wf_diff}")
    if replications < 2:
        raise ValueError(f"expected replications >= 2, got {replications}")
    model = model or ObserverModel()
    grid = sorted({int(n) for n in (participants or [10, 20, 40, 80, 160, 320, 640, 1280])})
    if not grid or grid[0] < 2:
        raise ValueError(f"expected participant counts >= 2, got {grid}")
    ev = _Evaluator(design, model, replications, alpha, wf_diff, seed)
    for n in grid:
        ev(n)
    crit = {"adjacent": lambda r: r["power_adjacent"] >= power, "ci": lambda r: r["ci_width"] <= target_ci}
    if wf_diff:
        crit["wf"] = lambda r: r["power_wf"] >= power
    required = {}
    for name, ok in crit.items():
        required[name] = _smallest(ev, grid, ok) if refine else next((n for n in grid if ok(ev(n))), None)
    required.setdefault("wf", None)
    table = pd.DataFrame(sorted(ev.cache.values(), key=lambda r: r["participants"]))
    pairs = ev.pairs
    settings = {"groups": len(design.truth), "conditions": "/".join(sorted({str(len(g)) for g in design.truth})),
                "sampling": design.sampling, "pairs": len(pairs), "trials_per_participant": design.trials_per_participant,
                "alpha": alpha, "power": power, "target_ci": target_ci, "wf_diff": wf_diff,
                "replications": replications, "seed": seed, "max_participants": grid[-1],
                "careless_share": float(sum(model.careless.values()))}
    return PlanResult(table, required, settings)


def plot_plan(result: PlanResult, path: str | Path) -> Path:
    """Precision against participants: power to separate adjacent conditions and CI width.

    Parameters
    ----------
    result : PlanResult
    path : str or Path
        PNG to write.

    Returns
    -------
    Path
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t, s = result.table, result.settings
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
    a1.plot(t["participants"], t["power_adjacent"], "o-", label="separate adjacent conditions")
    if t["power_wf"].notna().any():
        a1.plot(t["participants"], t["power_wf"], "s--", label=f"winning-frequency diff {s['wf_diff']:g}")
    a1.axhline(s["power"], color="grey", lw=0.8, ls=":")
    a1.set(xscale="log", xlabel="participants", ylabel="power", ylim=(0, 1.02), title="power")
    a1.legend(fontsize=8)
    a2.plot(t["participants"], t["ci_width"], "o-", color="C2")
    a2.axhline(s["target_ci"], color="grey", lw=0.8, ls=":")
    a2.set(xscale="log", yscale="log", xlabel="participants", ylabel="95% CI width (JOD)",
           title="precision of each condition's JOD")
    for ax, key in ((a1, "adjacent"), (a2, "ci")):
        n = result.required.get(key)
        if n:
            ax.axvline(n, color="C3", lw=0.8)
            ax.annotate(f"{n}", (n, ax.get_ylim()[0]), color="C3", fontsize=8, xytext=(3, 3),
                        textcoords="offset points")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
