"""The registry of 2AFC predictors: models that look at a whole triplet (reference, A, B) and say which
of A and B is closer, unlike full-reference metrics, which score one pair at a time.

A predictor's ``load()`` returns a callable ``predict(ref, a, b) -> (N,) tensor`` with the
probability that ``a`` is the better (closer) image; it raises
:class:`~lossarena.errors.MissingWeightsError` when its trained checkpoint is absent. ROI-MLP
(``roi-mlp``, ``roi-mlp-basic``) registers itself here from :mod:`lossarena.benchmark.roi_mlp`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch

from lossarena.registry import Registry

PredictFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclasses.dataclass(frozen=True)
class PredictorSpec:
    name: str
    load: Callable[[], PredictFn]
    available: Callable[[], bool]
    citation: str = ""
    description: str = ""
    backbones: Callable[[], tuple[str, ...]] = tuple  # ImageNet backbones the loaded predictor uses


PREDICTORS: Registry[PredictorSpec] = Registry("2AFC predictor")


def register_predictor(spec: PredictorSpec, *, replace: bool = False) -> PredictorSpec:
    PREDICTORS.add(spec.name, spec, replace=replace)
    return spec


def _ensure_builtins() -> None:
    from . import roi_mlp  # noqa: F401  (registers roi-mlp, roi-mlp-basic)


def get_predictor(name: str) -> PredictorSpec:
    _ensure_builtins()
    return PREDICTORS.get(name)


def predictor_names() -> list[str]:
    _ensure_builtins()
    return PREDICTORS.names()


def is_predictor(name: str) -> bool:
    _ensure_builtins()
    return name in PREDICTORS
