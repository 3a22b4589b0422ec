"""The metric benchmark: 2AFC accuracy of metrics against human judgments; DPIS and ROI-MLP.

Entry points for scripts and the demo (imported lazily, so ``import lossarena.benchmark`` is cheap)::

    from lossarena.benchmark import register_learned_metrics, run_2afc, votes_to_triplets
    register_learned_metrics()          # DPIS metric, ROI-MLP predictors (the `lossarena` CLI does this)
    votes_to_triplets("votes.csv", "stimuli/manifest.csv", "triplets.csv")
    run_2afc("triplets.csv", "stimuli", metrics=None, bootstrap=1000, out_csv="acc.csv", report_dir="report/")

Module layout (no module imports another's internals; shared helpers live in :mod:`.common`):
``common`` ← ``predictors`` (registry) ← ``roi_mlp`` / ``dpis`` (learned metrics, registered only by
:func:`register_learned_metrics`) ← ``twoafc`` (scoring) ← ``cli``.
"""

from __future__ import annotations

__all__ = ["register_learned_metrics", "run_2afc", "votes_to_triplets"]


def register_learned_metrics() -> None:
    """Register the project's learned metrics: ``dpis`` in the metric registry
    (:func:`lossarena.metrics.register_metric`) and the 2AFC predictors ``roi-mlp``, ``roi-mlp-basic``.

    Idempotent. Importing a benchmark module never registers anything; the ``lossarena`` CLI and
    :func:`~lossarena.benchmark.twoafc.run_2afc` call this. Registering loads no weights.
    """
    from . import dpis, roi_mlp

    dpis.register()
    roi_mlp.register()


def __getattr__(name: str):
    if name == "run_2afc":
        from .twoafc import run_2afc

        return run_2afc
    if name == "votes_to_triplets":
        from lossarena.data.triplets import votes_to_triplets

        return votes_to_triplets
    raise AttributeError(f"module 'lossarena.benchmark' has no attribute {name!r}")
