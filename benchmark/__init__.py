"""The metric benchmark: 2AFC accuracy of metrics against human judgments; DPIS and ROI-MLP.

Entry points for scripts and the demo (imported lazily, so ``import lossarena.benchmark`` is cheap)::

    from lossarena.benchmark import run_2afc, votes_to_triplets
    votes_to_triplets("votes.csv", "stimuli/manifest.csv", "triplets.csv")
    run_2afc("triplets.csv", "stimuli", metrics=None, bootstrap=1000, out_csv="acc.csv", report_dir="report/")
"""

from __future__ import annotations

__all__ = ["run_2afc", "votes_to_triplets"]


def __getattr__(name: str):
    if name == "run_2afc":
        from .twoafc import run_2afc

        return run_2afc
    if name == "votes_to_triplets":
        from lossarena.data.triplets import votes_to_triplets

        return votes_to_triplets
    raise AttributeError(f"module 'lossarena.benchmark' has no attribute {name!r}")
