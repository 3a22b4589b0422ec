"""Every page of the study app under Streamlit's AppTest (no browser): routing by stored stage,
consent, display check, training feedback, trials (buttons, toggle view, resume), completion code,
refusal, the gate for missing/invalid ids, and the admin page behind its secret."""

from __future__ import annotations

from pathlib import Path

import pytest
import study_fixtures
from lossarena.study_app.core.security import verify_completion_code
from lossarena.study_app.core.session import StudyRuntime
from lossarena.study_app.core.simulate import GOOD_DISPLAY
from streamlit.testing.v1 import AppTest

stimuli_dir = study_fixtures.stimuli_dir
make_study = study_fixtures.make_study
APP = str(Path(__file__).resolve().parents[1] / "study_app" / "app.py")


@pytest.fixture
def study(make_study, tmp_path, monkeypatch):
    cfg = make_study(sessions=1, trials_per_participant=3, traps_per_participant=1, n_practice=2)
    db = f"sqlite:///{tmp_path / 'app.sqlite'}"
    monkeypatch.setenv("LOSSARENA_STUDY_DIR", str(cfg.dir))
    monkeypatch.setenv("LOSSARENA_STUDY_DB", db)
    monkeypatch.delenv("LOSSARENA_ADMIN_SECRET", raising=False)
    rt = StudyRuntime.open(cfg.dir, db)
    yield cfg, rt
    rt.store.dispose()


def app(**params) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    for k, v in params.items():
        at.query_params[k] = v
    return at.run()


def texts(at) -> str:
    parts = []
    for kind in ("title", "header", "subheader", "markdown", "caption", "info", "warning", "error", "success", "code"):
        parts += [str(e.value) for e in getattr(at, kind)]
    return "\n".join(parts)


def test_gate_missing_invalid_and_preview(study):
    at = app()
    assert not at.exception
    assert "link on your recruiting platform" in texts(at)
    at = app(workerId="<b>evil</b>")
    assert not at.exception and "not valid" in texts(at) and "evil" not in texts(at)
    at = app(workerId="W1", assignmentId="ASSIGNMENT_ID_NOT_AVAILABLE")
    assert "preview" in texts(at)
    cfg, rt = study
    assert rt.store.list_participants(cfg.study_id) == []  # nobody was created


def test_consent_then_display_page(study):
    cfg, rt = study
    at = app(workerId="WCONSENT")
    assert not at.exception and "Information and consent" in texts(at)
    assert at.button(key="la_consent_go").disabled
    at.checkbox(key="la_consent_box").check().run()
    at.button(key="la_consent_go").click().run()
    assert not at.exception
    assert at.title[0].value == "Display check" and "1920×1080" in texts(at)
    assert rt.stage("WCONSENT") == "display"
    # the measurement comes from the browser component; the core records it, the app moves on
    rt.submit_display("WCONSENT", GOOD_DISPLAY)
    at.run()
    assert at.title[0].value == "Training"


def test_decline_and_small_screen_refusals(study):
    cfg, rt = study
    at = app(PROLIFIC_PID="WDECLINE")
    at.button(key="la_consent_decline").click().run()
    assert "chose not to take part" in texts(at)
    at = app(workerId="WSMALL")
    at.checkbox(key="la_consent_box").check().run()
    at.button(key="la_consent_go").click().run()
    rt.submit_display("WSMALL", dict(screen_w=1366, screen_h=768, dpr=1, card_px=300))
    at.run()
    t = texts(at)
    assert "Thank you for your interest" in t and "larger screen" in t and "1366×768" in t


def _to_stage(rt, pid, stage):
    rt.join(pid)
    rt.consent(pid)
    rt.submit_display(pid, GOOD_DISPLAY)
    if stage == "trials":
        while (item := rt.practice_item(pid)) is not None:
            rt.answer_practice(pid, item.index, item.correct_side)


def test_training_feedback_then_trials(study):
    cfg, rt = study
    _to_stage(rt, "WTRAIN", "training")
    at = app(workerId="WTRAIN")
    assert at.title[0].value == "Training" and len(at.get("image")) == 2
    item = rt.practice_item("WTRAIN")
    wrong = "left" if item.correct_side == "right" else "right"
    at.button(key=f"la_practice_{wrong}_0").click().run()
    assert not at.exception and "Not quite" in texts(at)
    item = rt.practice_item("WTRAIN")
    at.button(key=f"la_practice_{item.correct_side}_1").click().run()
    assert "Correct" in texts(at) and rt.stage("WTRAIN") == "trials"
    assert at.button(key="la_vote_left_0") is not None
    assert rt.participant("WTRAIN")["training_correct"] == 1


def test_trials_vote_toggle_resume_and_completion(study):
    cfg, rt = study
    _to_stage(rt, "WTRIAL", "trials")
    _to_stage(rt, "WOTHER", "trials")
    at = app(workerId="WTRIAL")
    assert not at.exception and len(at.get("image")) == 2
    # stimuli go out losslessly (PNG, never Streamlit's JPEG re-encoding); nobody else's data shown
    assert all(im.proto.imgs[0].url.endswith(".png") for im in at.get("image"))
    assert "WOTHER" not in texts(at)
    first = rt.current_pair("WTRIAL")
    # reload: a fresh session shows the same open pair
    at2 = app(workerId="WTRIAL")
    assert at2.button(key=f"la_vote_left_{first.seq}") is not None
    assert rt.current_pair("WTRIAL") == first
    # toggle view shows one image and a switch button
    at.toggle(key="la_toggle_on").set_value(True).run()
    assert len(at.get("image")) == 1
    at.button(key=f"la_toggle_btn_{first.seq}").click().run()
    assert "Showing B" in str(at.get("image")[0].proto)
    at.toggle(key="la_toggle_on").set_value(False).run()
    at.button(key=f"la_vote_left_{first.seq}").click().run()
    votes = rt.store.participant_votes(cfg.study_id, "WTRIAL")
    assert len(votes) == 1 and votes[0]["winner"] == first.left
    # the stale tab answers the same pair again: no second vote
    at2.button(key=f"la_vote_right_{first.seq}").click().run()
    assert len(rt.store.participant_votes(cfg.study_id, "WTRIAL")) == 1
    for _ in range(10):
        t = rt.current_pair("WTRIAL")
        if t is None:
            break
        at.run()
        at.button(key=f"la_vote_right_{t.seq}").click().run()
        assert not at.exception
    assert rt.stage("WTRIAL") == "done"
    at.run()
    assert at.title[0].value == "Thank you!"
    code = at.code[0].value
    assert verify_completion_code(cfg.secret, cfg.study_id, "WTRIAL", code)
    assert len(rt.store.participant_votes(cfg.study_id, "WTRIAL")) == 4


def test_admin_requires_secret(study):
    cfg, rt = study
    _to_stage(rt, "WADMIN", "trials")
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page("pages/admin.py")
    at.run()
    assert not at.exception and at.title[0].value == "Study admin"
    assert "WADMIN" not in texts(at) and len(at.dataframe) == 0
    at.text_input(key="la_admin_secret").input("wrong").run()
    at.button(key="la_admin_login").click().run()
    assert "Wrong secret" in texts(at) and len(at.dataframe) == 0
    at.text_input(key="la_admin_secret").input(cfg.admin_secret).run()
    at.button(key="la_admin_login").click().run()
    assert not at.exception and len(at.dataframe) == 2
    parts = at.dataframe[1].value
    assert list(parts["participant"]) == ["WADMIN"]
    prog = at.dataframe[0].value
    assert set(prog["condition"]) == {c for g in cfg.groups for c in g.conditions}
