"""The registry of 2AFC predictors: models that look at a whole triplet (reference, A, B) and say which
of A and B is closer, unlike full-reference metrics, which score one pair at a time.

A predictor's ``load(checkpoint)`` returns a callable ``predict(ref, a, b) -> (N,) tensor`` with the
probability that ``a`` is the better (closer) image; it raises
:class:`~lossarena.errors.MissingWeightsError` when its trained checkpoint is absent. The checkpoint
is an explicit argument (``None``: the predictor's documented default location). This module only
holds the registry; ROI-MLP (``roi-mlp``, ``roi-mlp-basic``) is registered by
:func:`lossarena.benchmark.register_learned_metrics`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import torch

from lossarena.registry import Registry

PredictFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclasses.dataclass(frozen=True)
class PredictorSpec:
    """A registered 2AFC predictor.

    Attributes
    ----------
    name : str
        Registry name (column of ``acc.csv``).
    load : callable
        ``load(checkpoint: Path | None) -> predict`` with ``predict(ref, a, b) -> P(a closer)`` (N,).
    available : callable
        ``available(checkpoint: Path | None) -> bool``: can :attr:`load` succeed.
    citation, description : str
    backbones : callable
        ``backbones(checkpoint) -> tuple of str``: ImageNet backbones the loaded predictor uses.
    """

    name: str
    load: Callable[[Path | None], PredictFn]
    available: Callable[[Path | None], bool]
    citation: str = ""
    description: str = ""
    backbones: Callable[[Path | None], tuple[str, ...]] = lambda checkpoint=None: ()


PREDICTORS: Registry[PredictorSpec] = Registry("2AFC predictor")


def register_predictor(spec: PredictorSpec, *, replace: bool = False) -> PredictorSpec:
    """Add ``spec`` to :data:`PREDICTORS` (``replace=False``: an existing name is an error)."""
    PREDICTORS.add(spec.name, spec, replace=replace)
    return spec


def get_predictor(name: str) -> PredictorSpec:
    """The registered predictor ``name`` (``UnknownNameError`` otherwise)."""
    return PREDICTORS.get(name)


def predictor_names() -> list[str]:
    """Names of the registered predictors."""
    return PREDICTORS.names()


def is_predictor(name: str) -> bool:
    """Whether ``name`` is a registered 2AFC predictor (rather than a metric)."""
    return name in PREDICTORS
