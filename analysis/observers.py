"""Simulated observers with a known answer: Thurstonian panels, careless participants, metric truth.

A simulated study is only a test of the analysis when its right answer is known. This module holds
the hidden ground truth and the people who answer:

* **Truth** — every stimulus ``(content, group, condition)`` has a latent quality in JOD units. It is
  a chosen metric's value on the stimulus (against its reference) mapped linearly to JOD
  (:func:`truth_from_metric`), or a weighted mixture of several metrics (:func:`truth_from_mixture`).
* **Honest observers** — Thurstone Case V with a personal noise level and side bias: observer ``o``
  prefers the left stimulus with probability ``Phi((q_L - q_R + b_o) / (SIGMA * s_o))``; ``SIGMA``
  = 1.4826 makes 1 JOD = 75 % preference for ``s_o = 1, b_o = 0`` (the analysis's scaling model, so
  the recovered scale is directly comparable with the truth).
* **Careless observers** (configurable shares): ``random`` (coin flips at normal speed), ``always_left``
  (the left image, always) and ``too_fast`` (coin flips, answered in 150–450 ms, before the images
  could be looked at).

Everything is drawn from ``numpy.random.default_rng`` seeded by the caller: the same seed gives the
same panel and answers. The study app's simulator (``lossarena study simulate``) and the power
analysis (:mod:`lossarena.analysis.power`) both use these observers.

References
----------
Thurstone, L. L. (1927). A law of comparative judgment. Psychological Review 34(4).
Perez-Ortiz, M. & Mantiuk, R. K. (2017). A practical guide and software for analysing pairwise
comparison experiments. arXiv:1712.03686 (the JOD unit).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.special import ndtr

from .thurstone import SIGMA

KINDS = ("honest", "random", "always_left", "too_fast")
CARELESS = KINDS[1:]

__all__ = ["CARELESS", "KINDS", "Observer", "ObserverModel", "draw_observers", "truth_from_metric",
           "truth_from_mixture"]


@dataclass(frozen=True)
class ObserverModel:
    """How a simulated panel behaves.

    Parameters
    ----------
    noise_sd : (float, float)
        Range of the per-observer noise multiplier ``s_o`` (drawn log-uniformly); 1 = the Thurstone
        Case V observer whose 1 JOD is 75 % preference. Must satisfy ``0 < low <= high``.
    bias_sd : float
        SD of the per-observer side bias ``b_o`` in JOD (positive favours the left image), >= 0.
    careless : mapping str -> float
        Share of the panel of each careless kind (``random``, ``always_left``, ``too_fast``); the
        shares must sum to at most 1; the rest is honest.
    trap_pass : float
        Probability that an honest observer picks the reference on a trap pair, in [0, 1].
    practice_correct : float
        Probability that an honest observer answers a practice pair right, in [0, 1].
    rt_median_ms : float
        Median response time of an attentive answer (log-normal, SD 0.45 in log units), > 0.

    Raises
    ------
    ValueError
        When a value is outside its range ("expected ..., got ...").
    """

    noise_sd: tuple[float, float] = (0.7, 1.4)
    bias_sd: float = 0.3
    careless: Mapping[str, float] = field(default_factory=lambda: {"random": 0.08, "always_left": 0.05,
                                                                   "too_fast": 0.05})
    trap_pass: float = 0.97
    practice_correct: float = 0.9
    rt_median_ms: float = 2500.0

    def __post_init__(self) -> None:
        lo, hi = (float(v) for v in self.noise_sd)
        if not (0 < lo <= hi and math.isfinite(hi)):
            raise ValueError(f"expected 0 < noise_sd[0] <= noise_sd[1], got {self.noise_sd}")
        if not (self.bias_sd >= 0 and math.isfinite(self.bias_sd)):
            raise ValueError(f"expected bias_sd >= 0, got {self.bias_sd}")
        unknown = set(self.careless) - set(CARELESS)
        if unknown:
            raise ValueError(f"expected careless kinds among {', '.join(CARELESS)}, got {sorted(unknown)}")
        shares = [float(v) for v in self.careless.values()]
        if any(not (0 <= s <= 1) for s in shares) or sum(shares) > 1 + 1e-9:
            raise ValueError(f"expected careless shares in [0, 1] summing to <= 1, got {dict(self.careless)}")
        for name in ("trap_pass", "practice_correct"):
            v = getattr(self, name)
            if not 0 <= v <= 1:
                raise ValueError(f"expected {name} in [0, 1], got {v}")
        if not self.rt_median_ms > 0:
            raise ValueError(f"expected rt_median_ms > 0, got {self.rt_median_ms}")

    @classmethod
    def from_dict(cls, d: Mapping | None) -> ObserverModel:
        """Build from a profile/config mapping (unknown keys are an error)."""
        d = dict(d or {})
        known = {"noise_sd", "bias_sd", "careless", "trap_pass", "practice_correct", "rt_median_ms"}
        extra = set(d) - known
        if extra:
            raise ValueError(f"expected observer keys among {', '.join(sorted(known))}, got {sorted(extra)}")
        if "noise_sd" in d:
            v = d["noise_sd"]
            d["noise_sd"] = (float(v), float(v)) if np.isscalar(v) else tuple(float(x) for x in v)  # type: ignore[arg-type]
        if "careless" in d:
            d["careless"] = {str(k): float(v) for k, v in dict(d["careless"] or {}).items()}
        return cls(**d)


@dataclass(frozen=True)
class Observer:
    """One simulated participant: its kind, noise multiplier and side bias (JOD)."""

    id: str
    kind: str = "honest"
    noise: float = 1.0
    bias: float = 0.0

    @property
    def careless(self) -> bool:
        return self.kind != "honest"

    def p_left(self, q_left: float | np.ndarray, q_right: float | np.ndarray) -> np.ndarray:
        """Probability of answering "left" for latent qualities ``q_left``, ``q_right`` (JOD)."""
        q_left, q_right = np.asarray(q_left, float), np.asarray(q_right, float)
        if self.kind == "always_left":
            return np.ones(np.broadcast(q_left, q_right).shape)
        if self.kind in ("random", "too_fast"):
            return np.full(np.broadcast(q_left, q_right).shape, 0.5)
        return ndtr((q_left - q_right + self.bias) / (SIGMA * self.noise))

    def answer(self, q_left: float, q_right: float, rng: np.random.Generator,
               model: ObserverModel) -> tuple[str, int]:
        """``("left" | "right", response time in ms)`` for one pair."""
        side = "left" if rng.random() < float(self.p_left(q_left, q_right)) else "right"
        return side, self.response_time_ms(rng, model)

    def answer_trap(self, correct_side: str, rng: np.random.Generator, model: ObserverModel) -> tuple[str, int]:
        """A trap pair (reference against a heavy degradation): honest observers pass with ``trap_pass``."""
        other = "right" if correct_side == "left" else "left"
        if self.kind == "always_left":
            side = "left"
        elif self.kind == "honest":
            side = correct_side if rng.random() < model.trap_pass else other
        else:
            side = correct_side if rng.random() < 0.5 else other
        return side, self.response_time_ms(rng, model)

    def answer_practice(self, correct_side: str, rng: np.random.Generator, model: ObserverModel) -> str:
        """A training pair with a known answer."""
        other = "right" if correct_side == "left" else "left"
        if self.kind == "always_left":
            return "left"
        p = model.practice_correct if self.kind == "honest" else 0.5
        return correct_side if rng.random() < p else other

    def response_time_ms(self, rng: np.random.Generator, model: ObserverModel) -> int:
        """Attentive: log-normal around ``rt_median_ms``; ``too_fast``: uniform 150–450 ms."""
        if self.kind == "too_fast":
            return int(rng.uniform(150, 450))
        return int(model.rt_median_ms * math.exp(0.45 * rng.standard_normal()))


def draw_observers(ids: Sequence[str], model: ObserverModel, seed: int) -> dict[str, Observer]:
    """A panel: each id gets a kind (exact shares, rounded; positions shuffled), noise and bias.

    Parameters
    ----------
    ids : sequence of str
        Participant ids, in order.
    model : ObserverModel
        Panel behaviour.
    seed : int
        Seed of the panel (independent of the answer seed).

    Returns
    -------
    dict
        id -> :class:`Observer`.
    """
    n = len(ids)
    rng = np.random.default_rng([int(seed), 0x0B5E])
    kinds = []
    for kind in CARELESS:
        kinds += [kind] * int(round(float(model.careless.get(kind, 0.0)) * n))
    kinds = (kinds + ["honest"] * n)[:n]
    kinds = [kinds[i] for i in rng.permutation(n)]
    lo, hi = model.noise_sd
    noise = np.exp(rng.uniform(math.log(lo), math.log(hi), size=n))
    bias = rng.normal(0.0, model.bias_sd, size=n) if model.bias_sd > 0 else np.zeros(n)
    return {pid: Observer(pid, k, float(s), float(b)) for pid, k, s, b in zip(ids, kinds, noise, bias)}


def truth_from_metric(values: pd.DataFrame, *, higher_is_better: bool, jod_spread: float = 3.0,
                      value_col: str = "value") -> dict[tuple[str, str, str], float]:
    """Latent qualities (JOD) from one metric's values on the stimuli.

    The map is linear and shared by the whole study: ``q = ±(v - mean v) / sd(v) * jod_spread``
    (sign so that better is higher), so within every (content, group) the order and the relative
    distances are the metric's, and the spread across the study is ``jod_spread`` JOD (one SD).

    Parameters
    ----------
    values : DataFrame
        Columns ``content``, ``group``, ``condition`` and ``value_col`` (one row per stimulus).
    higher_is_better : bool
        The metric's direction.
    jod_spread : float
        SD of the latent quality over all stimuli, in JOD (> 0).
    value_col : str
        The column with the metric's values.

    Returns
    -------
    dict
        ``(content, group, condition) -> q`` in JOD.

    Raises
    ------
    ValueError
        On missing columns, non-finite values, a constant metric or ``jod_spread <= 0``.
    """
    need = {"content", "group", "condition", value_col}
    if not need <= set(values.columns):
        raise ValueError(f"expected columns {sorted(need)}, got {list(values.columns)}")
    if not jod_spread > 0:
        raise ValueError(f"expected jod_spread > 0, got {jod_spread}")
    v = values[value_col].to_numpy(float)
    if len(v) == 0 or not np.isfinite(v).all():
        raise ValueError(f"expected finite metric values for every stimulus, got {int((~np.isfinite(v)).sum())} "
                         f"non-finite of {len(v)}")
    sd = float(v.std())
    if sd == 0:
        raise ValueError("expected a metric that varies across the stimuli, got a constant")
    z = (v - v.mean()) / sd * (1.0 if higher_is_better else -1.0)
    return {(str(c), str(g), str(k)): float(q * jod_spread)
            for c, g, k, q in zip(values["content"], values["group"], values["condition"], z)}


def truth_from_mixture(parts: Mapping[str, pd.DataFrame], weights: Mapping[str, float],
                       directions: Mapping[str, bool], jod_spread: float = 3.0) -> dict[tuple[str, str, str], float]:
    """A weighted mixture of metrics: each metric is standardised (better = higher), mixed with
    ``weights`` and rescaled to ``jod_spread`` JOD.

    Parameters
    ----------
    parts : mapping metric -> DataFrame
        Per metric, the stimuli's values (as for :func:`truth_from_metric`; same stimuli in each).
    weights : mapping metric -> float
        Non-negative mixture weights (normalised here; at least one > 0).
    directions : mapping metric -> bool
        ``True`` when higher is better.
    jod_spread : float
        SD of the result in JOD.

    Returns
    -------
    dict
        ``(content, group, condition) -> q`` in JOD.
    """
    w = {m: float(weights.get(m, 0.0)) for m in parts}
    if any(x < 0 for x in w.values()) or sum(w.values()) <= 0:
        raise ValueError(f"expected non-negative weights with a positive sum, got {w}")
    total: dict[tuple[str, str, str], float] = {}
    for m, df in parts.items():
        if w[m] == 0:
            continue
        t = truth_from_metric(df, higher_is_better=directions[m], jod_spread=1.0)
        for k, q in t.items():
            total[k] = total.get(k, 0.0) + w[m] * q
    keys = list(total)
    arr = np.array([total[k] for k in keys])
    arr = (arr - arr.mean()) / (arr.std() or 1.0) * jod_spread
    return dict(zip(keys, map(float, arr)))
