"""Fixtures shared by the study-app tests: a small synthetic stimuli folder (built once per session)
and a factory for study folders built from it."""

from __future__ import annotations

import pytest
from lossarena.study_app.core.build import build_study
from lossarena.study_app.core.stimuli import make_synthetic_stimuli


@pytest.fixture(scope="session")
def stimuli_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("stimuli")
    make_synthetic_stimuli(d, contents=3, target_bpps=(0.4, 1.0), max_side=384)
    return d


@pytest.fixture
def make_study(stimuli_dir, tmp_path):
    counter = [0]

    def _make(**kw):
        counter[0] += 1
        kw.setdefault("crop", (320, 256))
        kw.setdefault("progress", False)
        return build_study(stimuli_dir, tmp_path / f"study{counter[0]}", **kw)

    return _make
