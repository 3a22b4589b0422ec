"""Participant ids, stimulus paths and completion codes: the study's security boundary.

* Participant (worker) ids come from the URL query (``workerId`` for MTurk, ``PROLIFIC_PID`` for
  Prolific, ``participant`` otherwise) and must match :data:`WORKER_ID_RE`.
* Stimulus files are resolved only inside the study folder (:func:`safe_stimulus_path`).
* Completion codes are HMAC-SHA256 of the study id and worker id under the study secret; without the
  secret they cannot be forged, and :func:`verify_completion_code` compares in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from pathlib import Path

from lossarena.errors import InputError

WORKER_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
# query parameters that carry the participant id, in order of preference
WORKER_ID_PARAMS = ("workerId", "PROLIFIC_PID", "participant")
MTURK_PREVIEW_ASSIGNMENT = "ASSIGNMENT_ID_NOT_AVAILABLE"


def validate_worker_id(value: object) -> str:
    """The id itself, or InputError when it is not 1-64 characters of ``[A-Za-z0-9_-]``."""
    if not isinstance(value, str) or not WORKER_ID_RE.fullmatch(value):
        shown = repr(value)[:40]
        raise InputError(f"participant id {shown}: expected 1-64 characters of letters, digits, '_' or '-'")
    return value


def worker_id_from_query(params) -> tuple[str | None, str | None]:
    """(worker id, platform) from a mapping of URL query parameters; (None, None) when absent.

    A present but malformed id raises InputError (never echoed back as HTML).
    """
    for key, platform in zip(WORKER_ID_PARAMS, ("mturk", "prolific", "direct")):
        if key in params:
            raw = params[key]
            if isinstance(raw, list):
                raw = raw[0] if raw else ""
            return validate_worker_id(raw), platform
    return None, None


def safe_stimulus_path(study_dir: str | Path, rel: str) -> Path:
    """``study_dir / rel`` resolved, refusing anything outside the study folder (``..``, absolute
    paths, symlinks pointing out) and anything that is not an existing regular file."""
    root = Path(study_dir).resolve()
    if not isinstance(rel, str) or not rel or "\x00" in rel:
        raise InputError(f"stimulus path {rel!r}: empty or invalid")
    p = Path(rel)
    if p.is_absolute() or p.drive:
        raise InputError(f"stimulus path {rel!r}: must be relative to the study folder")
    full = (root / p).resolve()
    try:
        full.relative_to(root)
    except ValueError:
        raise InputError(f"stimulus path {rel!r}: outside the study folder") from None
    if not full.is_file():
        raise InputError(f"stimulus path {rel!r}: no such file in the study folder")
    return full


def completion_code(secret: str, study_id: str, worker_id: str) -> str:
    """``XXXX-XXXX-XXXX-XXXX`` (base32 of HMAC-SHA256(secret, study_id NUL worker_id), 80 bits)."""
    if not secret:
        raise InputError("study secret is empty: cannot issue completion codes")
    mac = hmac.new(secret.encode(), f"{study_id}\x00{worker_id}".encode(), hashlib.sha256).digest()
    s = base64.b32encode(mac[:10]).decode()
    return "-".join(s[i : i + 4] for i in range(0, 16, 4))


def verify_completion_code(secret: str, study_id: str, worker_id: str, code: str) -> bool:
    """True iff ``code`` is the completion code of this worker in this study (case/space tolerant)."""
    norm = re.sub(r"[\s-]", "", str(code)).upper()
    want = completion_code(secret, study_id, worker_id).replace("-", "")
    return hmac.compare_digest(norm.encode(), want.encode())


def check_secret(given: str | None, expected: str | None) -> bool:
    """Constant-time comparison; False when either side is missing or empty."""
    if not given or not expected:
        return False
    return hmac.compare_digest(str(given).encode(), str(expected).encode())
