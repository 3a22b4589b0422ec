"""Every page of the study app under Streamlit's AppTest (no browser): routing by stored stage,
consent, display check, training feedback, trials (answers sent by the study component, prefetch,
resume), completion code, refusal, the gate for missing/invalid ids, and the admin page behind its
secret. The browser side of the study component is not run here (AppTest has no browser): its
messages are injected into session state exactly as the component sends them, and the arguments the
page sends to it are read back from the element. tests/study_app/test_study_browser.py drives the real thing."""

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
APP = str(Path(__file__).resolve().parents[2] / "study_app" / "app.py")


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


def send(at, key: str, value: dict) -> AppTest:
    """What the component does in the browser: set its value (with a fresh counter) -> rerun."""
    send.n = getattr(send, "n", 0) + 1
    at.session_state[key] = {**value, "n": send.n}
    return at.run()


def comp_args(at) -> dict:
    """The arguments the page sent to the study component on its last run."""
    import json

    el = at.get("component_instance")
    assert len(el) == 1, el
    return json.loads(el[0].proto.json_args)


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
    a = comp_args(at)
    assert a["mode"] == "consent" and any("10–15 minutes" in p for p in a["paragraphs"])
    at = send(at, "la_c_consent", {"action": "consent"})
    assert not at.exception
    assert at.title[0].value == "Display check" and "1920×1080" in texts(at)
    assert rt.stage("WCONSENT") == "display"
    a = comp_args(at)
    assert a["mode"] == "display" and a["crop"] == list(cfg.crop) and a["card_start"] == 40
    # the start value of the card control cannot pass: not moved -> asked again, not refused
    at = send(at, "la_c_display", {"action": "display", "measurement": {**GOOD_DISPLAY, "card_px": 40, "moved": False}})
    assert rt.stage("WCONSENT") == "display" and "move the card" in comp_args(at)["message"]
    # implausible diagonal -> asked again
    at = send(at, "la_c_display", {"action": "display", "measurement": {**GOOD_DISPLAY, "card_px": 60}})
    assert rt.stage("WCONSENT") == "display" and "unlikely" in comp_args(at)["message"]
    at = send(at, "la_c_display", {"action": "display", "measurement": "garbage"})
    assert not at.exception and "could not be read" in comp_args(at)["message"]
    at = send(at, "la_c_display", {"action": "display", "measurement": GOOD_DISPLAY})
    assert at.title == [] or at.title[0].value != "Display check"
    assert rt.stage("WCONSENT") == "training" and comp_args(at)["kind"] == "practice"
    attempts = rt.store.list_events(cfg.study_id, "WCONSENT", "display_attempt")
    assert len(attempts) == 4  # every attempt is logged, the unreadable one too


def test_decline_and_small_screen_refusals(study):
    cfg, rt = study
    at = app(PROLIFIC_PID="WDECLINE")
    at = send(at, "la_c_consent", {"action": "decline"})
    assert "chose not to take part" in comp_args(at)["message"] and not comp_args(at)["retry"]
    at = app(workerId="WSMALL")
    at = send(at, "la_c_consent", {"action": "consent"})
    at = send(at, "la_c_display", {"action": "display", "measurement": dict(
        screen_w=1366, screen_h=768, dpr=1, card_px=250, inner_w=1366, inner_h=700)})
    a = comp_args(at)
    assert a["mode"] == "refused" and "1366×768" in a["message"] and a["retry"]
    # back on another device: the display check again, a bounded number of times
    for _ in range(cfg.qc.max_display_attempts - 1):
        at = send(at, "la_c_refused", {"action": "retry_display"})
        assert rt.stage("WSMALL") == "display"
        at = send(at, "la_c_display", {"action": "display", "measurement": dict(
            screen_w=1366, screen_h=768, dpr=1, card_px=250, inner_w=1366, inner_h=700)})
    assert rt.stage("WSMALL") == "refused" and not comp_args(at)["retry"]
    at = send(at, "la_c_refused", {"action": "retry_display"})
    assert rt.stage("WSMALL") == "refused"
    # a phone is refused with the reason, whatever its pixel count
    at = app(workerId="WPHONE")
    at = send(at, "la_c_consent", {"action": "consent"})
    at = send(at, "la_c_display", {"action": "display", "measurement": dict(
        screen_w=390, screen_h=844, dpr=3, card_px=40, inner_w=390, inner_h=844, touch=True, moved=True)})
    assert rt.stage("WPHONE") == "refused" and "touch devices" in comp_args(at)["message"]


def _to_stage(rt, pid, stage):
    rt.join(pid)
    rt.consent(pid)
    rt.submit_display(pid, GOOD_DISPLAY)
    if stage == "trials":
        while (item := rt.practice_item(pid)) is not None:
            rt.answer_practice(pid, item.index, item.correct_side)


def test_training_feedback_on_the_answered_pair_then_trials(study):
    cfg, rt = study
    _to_stage(rt, "WTRAIN", "training")
    at = app(workerId="WTRAIN")
    a = comp_args(at)
    assert a["kind"] == "practice" and [p["id"] for p in a["pairs"]] == ["p0-0", "p0-1"]  # current + prefetch
    assert a["pairs"][0]["left"].startswith("data:image/png;base64,")
    item = rt.practice_item("WTRAIN")
    at = send(at, "la_c_practice", {"action": "answers", "answers": [{"id": "p0-0", "side": item.correct_side}]})
    a = comp_args(at)
    fb = a["feedback"]
    assert fb["id"] == "p0-0" and fb["correct"] and cfg.practice[0].degradation in fb["text"]
    assert a["pairs"][0]["id"] == "p0-0"  # the feedback is drawn on the answered pair
    item = rt.practice_item("WTRAIN")
    wrong = "left" if item.correct_side == "right" else "right"
    at = send(at, "la_c_practice", {"action": "answers", "answers": [{"id": "p0-1", "side": wrong}]})
    fb = comp_args(at)["feedback"]
    # 1 of 2 right < 2 needed: the training starts again (one retry)
    assert fb["id"] == "p0-1" and not fb["correct"] and fb["outcome"] == "retry" and "once more" in fb["text"]
    assert cfg.practice[1].degradation in fb["text"]
    at = send(at, "la_c_practice", {"action": "feedback_done"})
    assert rt.stage("WTRAIN") == "training" and rt.participant("WTRAIN")["training_attempt"] == 1
    for i in range(2):
        item = rt.practice_item("WTRAIN")
        at = send(at, "la_c_practice", {"action": "answers", "answers": [{"id": f"p1-{i}", "side": item.correct_side}]})
    assert comp_args(at)["feedback"]["outcome"] == "trials" and rt.stage("WTRAIN") == "trials"
    at = send(at, "la_c_practice", {"action": "feedback_done"})
    assert comp_args(at)["kind"] == "trial"


def test_training_gate_ends_politely(study):
    cfg, rt = study
    _to_stage(rt, "WGATE", "training")
    at = app(workerId="WGATE")
    for attempt in range(2):
        for i in range(2):
            item = rt.practice_item("WGATE")
            wrong = "left" if item.correct_side == "right" else "right"
            at = send(at, "la_c_practice", {"action": "answers", "answers": [{"id": f"p{attempt}-{i}", "side": wrong}]})
        at = send(at, "la_c_practice", {"action": "feedback_done"})
    assert rt.stage("WGATE") == "refused" and rt.participant("WGATE")["refusal"].startswith("training")
    a = comp_args(at)
    assert a["mode"] == "refused" and "practice" in a["message"] and not a["retry"]
    with pytest.raises(Exception, match="not finished"):
        rt.completion_code("WGATE")


def test_trials_answers_prefetch_resume_and_completion(study):
    cfg, rt = study
    _to_stage(rt, "WTRIAL", "trials")
    _to_stage(rt, "WOTHER", "trials")
    at = app(workerId="WTRIAL")
    assert not at.exception
    a = comp_args(at)
    assert a["kind"] == "trial" and len(a["pairs"]) == cfg.prefetch == 3  # the current pair and two ahead
    assert all(p["left"].startswith("data:image/png;base64,") for p in a["pairs"])
    assert "WOTHER" not in texts(at) and "WOTHER" not in str(a)
    first, second = a["pairs"][0]["id"], a["pairs"][1]["id"]
    # reload: a fresh session shows the same open pairs (and counts the reload)
    at2 = app(workerId="WTRIAL")
    assert [p["id"] for p in comp_args(at2)["pairs"]] == [p["id"] for p in a["pairs"]]
    assert rt.participant("WTRIAL")["reloads"] == 1
    log = dict(window_w=1900, window_h=960, screen_w=1920, screen_h=1080, dpr=1, reloads=1, toggles=3)
    at = send(at, "la_c_trials", {"action": "answers", "held": [p["id"] for p in a["pairs"]],
                                  "answers": [{"id": first, "side": "left", "rt_ms": 1234, **log}]})
    a = comp_args(at)
    assert a["acked"] == [first] and [p["id"] for p in a["pairs"]][0] == second
    assert "left" not in a["pairs"][0]  # held by the browser: not sent again
    votes = rt.store.participant_votes(cfg.study_id, "WTRIAL")
    assert len(votes) == 1 and votes[0]["response_time_ms"] == 1234 and votes[0]["client"]["toggles"] == 3
    assert votes[0]["server_time_ms"] > 0
    # the stale tab answers the same pair again: no second vote
    at2 = send(at2, "la_c_trials", {"action": "answers", "answers": [{"id": first, "side": "right", "rt_ms": 900}]})
    assert len(rt.store.participant_votes(cfg.study_id, "WTRIAL")) == 1
    # hostile values are ignored, never a traceback
    at = send(at, "la_c_trials", {"action": "answers", "answers": [{"id": "x", "side": "up"}, 5, None]})
    assert not at.exception
    for _ in range(10):
        if rt.stage("WTRIAL") != "trials":
            break
        ids = [p["id"] for p in comp_args(at)["pairs"]]
        at = send(at, "la_c_trials", {"action": "answers", "answers": [
            {"id": i, "side": "right", "rt_ms": 1500, **log} for i in ids]})
        assert not at.exception
    assert rt.stage("WTRIAL") == "done"
    at.run()
    assert at.title[0].value == "Thank you!"
    code = comp_args(at)["code"]
    assert verify_completion_code(cfg.secret, cfg.study_id, "WTRIAL", code)
    assert len(rt.store.participant_votes(cfg.study_id, "WTRIAL")) == 4


def test_display_change_during_trials_pauses(study):
    cfg, rt = study
    _to_stage(rt, "WPAUSE", "trials")
    at = app(workerId="WPAUSE")
    small = dict(screen_w=1920, screen_h=1080, dpr=1, inner_w=600, inner_h=300)
    at = send(at, "la_c_trials", {"action": "display", "display": small, "answers": []})
    assert "window" in comp_args(at)["paused"]
    at = send(at, "la_c_trials", {"action": "display", "display": {**small, "inner_w": 1900, "inner_h": 960}})
    assert comp_args(at)["paused"] is None
    # moved to a smaller screen (or zoomed so that the physical resolution drops): paused as well
    at = send(at, "la_c_trials", {"action": "display", "display": dict(screen_w=1366, screen_h=768, dpr=1,
                                                                        inner_w=1366, inner_h=700)})
    assert "resolution" in comp_args(at)["paused"]


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
    assert list(parts["participant"]) == ["WADMIN"] and {"flagged", "flags"} <= set(parts.columns)
    prog = at.dataframe[0].value
    assert set(prog["condition"]) == {c for g in cfg.groups for c in g.conditions}
    # an error id shown to a participant resolves here
    rt.store.log_event(cfg.study_id, "WADMIN", "error", {"error_id": "abcd1234", "type": "KeyError",
                                                          "traceback": "Traceback: boom"})
    at.text_input(key="la_admin_error_id").input("abcd1234").run()
    assert "Traceback: boom" in texts(at)
