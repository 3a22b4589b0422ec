"""The crowdsourced pairwise-comparison study: build, serve (Streamlit), simulate, export.

Plain functions for scripts and the demo::

    from lossarena.study_app import build_study, simulate, export_votes, serve_command_string
    make_synthetic_stimuli("stim")                       # or a `lossarena codecs match` folder
    build_study("stim", "study", sessions=1, trials_per_participant=12)
    simulate("study", None, participants=20, concurrency=4, seed=0)   # default db: study/votes.sqlite
    export_votes("study", None, "votes.csv")
    print(serve_command_string("study"))                 # the streamlit command `lossarena study serve` runs
"""

from __future__ import annotations

from .core.build import build_study
from .core.export import export_votes
from .core.simulate import simulate
from .core.stimuli import make_synthetic_stimuli


def serve_command_string(study_dir, db_url=None, port: int = 8501) -> str:
    from .serve import serve_command_string as _s

    return _s(study_dir, db_url, port)


__all__ = ["build_study", "export_votes", "make_synthetic_stimuli", "serve_command_string", "simulate"]
