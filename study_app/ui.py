"""Streamlit glue shared by the pages: settings, the cached runtime, the participant of this tab,
component messages, stimulus bytes and participant-facing errors. No study logic here (that is
:mod:`core`)."""

from __future__ import annotations

import base64
import functools
import logging
import os
import secrets
import sys
import traceback
from pathlib import Path

import streamlit as st

from lossarena.errors import InputError

from . import state as K
from .core.security import MTURK_PREVIEW_ASSIGNMENT, worker_id_from_query
from .core.session import StudyRuntime
from .ui_env import ENV_DB_URL, ENV_STUDY_DIR

log = logging.getLogger("lossarena.study_app")

__all__ = ["ENV_DB_URL", "ENV_STUDY_DIR", "runtime", "participant_id", "require_participant", "message",
           "data_url", "report_error"]


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
    meta = {k: params[k][0][:64] for k in ("assignmentId", "hitId", "STUDY_ID", "SESSION_ID") if params.get(k)}
    sub = (params.get("turkSubmitTo") or [""])[0].rstrip("/")
    if sub and sub in rt.cfg.mturk_submit_hosts:  # only the configured MTurk hosts, never an arbitrary URL
        meta["turkSubmitTo"] = sub
    rt.join(pid, platform=platform, meta=meta)
    return pid, ""


def require_participant() -> tuple[StudyRuntime, str]:
    """For participant pages: the runtime and this tab's participant (stops the page otherwise)."""
    rt = runtime()
    pid, why = participant_id(rt)
    if pid is None:
        st.warning("This page needs a valid participant link.")
        st.stop()
    return rt, pid


def message(key: str) -> dict | None:
    """The component's latest message if not acted on yet (each message carries a counter ``n``)."""
    v = st.session_state.get(key)
    if not isinstance(v, dict) or not isinstance(v.get("n"), int) or not isinstance(v.get("action"), str):
        return None
    handled = st.session_state.setdefault(K.HANDLED, set())
    tag = (key, v["n"])
    if tag in handled:
        return None
    handled.add(tag)
    return v


@functools.lru_cache(maxsize=256)
def _data_url(path: str, mtime_ns: int) -> str:
    data = Path(path).read_bytes()
    mime = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp"}.get(
        Path(path).suffix.lower(), "application/octet-stream")
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def data_url(rt: StudyRuntime, rel: str) -> str:
    """The stimulus file's own bytes, unchanged, as a data URL (the browser decodes the study's PNG)."""
    p = rt.stimulus_file(rel)
    return _data_url(str(p), p.stat().st_mtime_ns)


def report_error(exc: BaseException) -> None:
    """Show a participant a generic message with an error id; the details go to the server log and
    the study's event log, where the admin page resolves the id."""
    eid = secrets.token_hex(4)
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    log.error("error id %s: %s", eid, tb)
    try:
        rt = runtime()
        rt.store.log_event(rt.study_id, st.session_state.get(K.WORKER), "error",
                           {"error_id": eid, "type": type(exc).__name__, "traceback": tb[-8000:]})
    except Exception:  # noqa: BLE001 - the store itself may be what failed; the server log has it
        log.exception("error id %s could not be written to the event log", eid)
    st.error(f"Sorry, something went wrong. Please reload the page; if it happens again, contact the "
             f"researchers and quote error id {eid}.")
