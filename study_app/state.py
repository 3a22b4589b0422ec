"""Every Streamlit session-state key the study app uses, in one place.

Session state is only a convenience cache (the participant id of this browser tab, one-shot
messages, the admin login, view toggles): all study progress is persisted in the vote store, so a
reload or reconnect that loses session state resumes from the store.
"""

from __future__ import annotations

PREFIX = "la_"

WORKER = PREFIX + "worker"  # validated participant id of this tab
PLATFORM = PREFIX + "platform"
FLASH = PREFIX + "flash"  # (kind, message) shown once on the next page run
CONSENT_BOX = PREFIX + "consent_box"
CONSENT_GO = PREFIX + "consent_go"
CONSENT_DECLINE = PREFIX + "consent_decline"
DISPLAY_PROBE = PREFIX + "display_probe"
TOGGLE_ON = PREFIX + "toggle_on"  # toggle view instead of side by side
HANDLED_KEYS = PREFIX + "handled_keys"  # keyboard events already acted on: {(component key, n)}
ADMIN_SECRET = PREFIX + "admin_secret"
ADMIN_OK = PREFIX + "admin_ok"
ADMIN_LOGIN = PREFIX + "admin_login"


def vote_button(seq: int, side: str) -> str:
    return f"{PREFIX}vote_{side}_{seq}"


def practice_button(index: int, side: str) -> str:
    return f"{PREFIX}practice_{side}_{index}"


def keys_component(scope: str, seq: int) -> str:
    return f"{PREFIX}keys_{scope}_{seq}"


def toggle_button(seq: int) -> str:
    return f"{PREFIX}toggle_btn_{seq}"


def toggle_side(seq: int) -> str:
    """Which image the toggle view shows for pair ``seq``: left | right."""
    return f"{PREFIX}toggle_side_{seq}"
