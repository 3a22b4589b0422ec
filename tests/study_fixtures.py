"""Fixtures shared by the study-app tests: a small synthetic stimuli folder and study folders built
from it (built once per distinct set of build options and shared: tests write their votes to their own
databases, never into the study folder)."""

from __future__ import annotations

import pytest
from lossarena.study_app.core.build import build_study
from lossarena.study_app.core.config import load_config
from lossarena.study_app.core.stimuli import make_synthetic_stimuli


@pytest.fixture(scope="session")
def stimuli_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("stimuli")
    make_synthetic_stimuli(d, contents=3, target_bpps=(0.4, 1.0), max_side=384)
    return d


_BUILT: dict[tuple, object] = {}


@pytest.fixture
def make_study(stimuli_dir, tmp_path_factory):
    """make_study(**build_study options) -> StudyConfig; cached per option set for the session."""

    def _make(**kw):
        kw.setdefault("crop", (320, 256))
        kw.setdefault("progress", False)
        key = (str(stimuli_dir), repr(sorted(kw.items())))
        if key not in _BUILT:
            out = tmp_path_factory.mktemp("study")
            build_study(stimuli_dir, out, force=True, **kw)
            _BUILT[key] = out
        return load_config(_BUILT[key])

    return _make


def to_trials(rt, pid: str) -> None:
    """Walk participant ``pid`` through join, consent, a good display check and the practice (answered
    right) with the runtime ``rt`` — the state in which trials are served."""
    from lossarena.study_app.core.simulate import GOOD_DISPLAY

    rt.join(pid)
    rt.consent(pid)
    rt.submit_display(pid, GOOD_DISPLAY)
    while (item := rt.practice_item(pid)) is not None:
        rt.answer_practice(pid, item.index, item.correct_side)
