"""Streamlit glue shared by the pages: settings, the cached runtime, the participant of this tab,
the image pair and one-shot messages. No study logic here (that is :mod:`core`)."""

from __future__ import annotations

import os
import secrets
import sys

import streamlit as st

from lossarena.errors import InputError

from . import state as K
from .core.security import MTURK_PREVIEW_ASSIGNMENT, worker_id_from_query
from .core.session import StudyRuntime

ENV_STUDY_DIR = "LOSSARENA_STUDY_DIR"
ENV_DB_URL = "LOSSARENA_STUDY_DB"


def settings() -> tuple[str, str | None]:
    """(study dir, db url) from the script arguments (``-- --study DIR --db URL``) or the environment."""
    study = os.environ.get(ENV_STUDY_DIR)
    db = os.environ.get(ENV_DB_URL) or None
    argv = sys.argv[1:]
    for flag in ("--study", "--db"):
        if flag in argv:
            i = argv.index(flag)
            if i + 1 < len(argv):
                if flag == "--study":
                    study = argv[i + 1]
                else:
                    db = argv[i + 1]
    if not study:
        raise InputError(f"no study folder: pass `-- --study DIR` to streamlit or set {ENV_STUDY_DIR}")
    return study, db


@st.cache_resource(show_spinner=False)
def _runtime(study: str, db: str | None) -> StudyRuntime:
    return StudyRuntime.open(study, db)


def runtime() -> StudyRuntime:
    return _runtime(*settings())


def participant_id(rt: StudyRuntime) -> tuple[str | None, str]:
    """(participant id or None, why not). Validates the URL query; keeps the id in the URL so a
    reload resumes."""
    params = {k: st.query_params.get_all(k) for k in st.query_params}
    if params.get("assignmentId", [""])[0] == MTURK_PREVIEW_ASSIGNMENT:
        return None, "preview"
    try:
        pid, platform = worker_id_from_query(params)
    except InputError:
        return None, "invalid"
    if pid is None:
        pid = st.session_state.get(K.WORKER)
        platform = st.session_state.get(K.PLATFORM)
        if pid is None and rt.cfg.allow_anonymous:
            pid, platform = "anon-" + secrets.token_hex(6), "direct"
        if pid is None:
            return None, "missing"
        st.query_params["participant" if platform == "direct" else
                        {"mturk": "workerId", "prolific": "PROLIFIC_PID"}.get(platform, "participant")] = pid
    st.session_state[K.WORKER] = pid
    st.session_state[K.PLATFORM] = platform
    meta = {k: params[k][0] for k in ("assignmentId", "hitId", "STUDY_ID", "SESSION_ID") if params.get(k)}
    rt.join(pid, platform=platform, meta={k: v[:64] for k, v in meta.items()})
    return pid, ""


def require_participant() -> tuple[StudyRuntime, str]:
    """For participant pages: the runtime and this tab's participant (stops the page otherwise)."""
    rt = runtime()
    pid, why = participant_id(rt)
    if pid is None:
        st.warning("This page needs a valid participant link.")
        st.stop()
    return rt, pid


def flash(kind: str, message: str) -> None:
    st.session_state[K.FLASH] = (kind, message)


def show_flash() -> None:
    item = st.session_state.pop(K.FLASH, None)
    if item:
        kind, msg = item
        {"success": st.success, "warning": st.warning, "info": st.info}.get(kind, st.info)(msg)


def display_width(rt: StudyRuntime, pid: str) -> int:
    """CSS width for a crop so that it is shown 1:1 in physical pixels on this participant's screen."""
    disp = rt.participant(pid).get("display") or {}
    dpr = float(disp.get("dpr") or 1.0)
    return max(64, int(round(rt.cfg.crop[0] / max(dpr, 0.25))))


def image_pair(rt: StudyRuntime, left_rel: str, right_rel: str, width: int, toggle_side: str | None = None) -> None:
    """Side by side (A left, B right) or, in toggle view, only one of them in the same place.

    Always PNG: Streamlit's default ("auto") re-encodes photographs as JPEG, which would add
    compression artefacts to the very stimuli being judged."""
    left, right = rt.stimulus_file(left_rel), rt.stimulus_file(right_rel)
    if toggle_side is None:
        c1, c2 = st.columns(2, gap="small")
        c1.image(str(left), caption="A (left)", width=width, output_format="PNG")
        c2.image(str(right), caption="B (right)", width=width, output_format="PNG")
    else:
        shown = left if toggle_side == "left" else right
        st.image(str(shown), caption="Showing " + ("A (left)" if toggle_side == "left" else "B (right)"),
                 width=width, output_format="PNG")


def new_key_action(component_key: str, event) -> str | None:
    """The action of a keyboard event not acted on yet, else None."""
    if not isinstance(event, dict) or "n" not in event:
        return None
    handled = st.session_state.setdefault(K.HANDLED_KEYS, set())
    tag = (component_key, event.get("n"))
    if tag in handled:
        return None
    handled.add(tag)
    action = event.get("action")
    return action if action in ("left", "right", "toggle") else None
