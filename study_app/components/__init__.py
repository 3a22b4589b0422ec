"""Two small bidirectional Streamlit components (plain HTML + JS, no build step).

``display_probe``: measures ``screen.width/height`` (CSS px) and ``devicePixelRatio`` in the browser
and runs the credit-card calibration; returns a dict for :class:`core.display.DisplayMeasurement`
once the participant confirms. Streamlit itself gives an app no screen size (its issue #10987).

``keys``: keyboard shortcuts; returns ``{"action": ..., "n": counter}`` on every mapped key press
(listening on the app page, not only inside the component's iframe).
"""

from __future__ import annotations

from pathlib import Path

import streamlit.components.v1 as components

_HERE = Path(__file__).parent
_display_probe = components.declare_component("lossarena_display_probe", path=str(_HERE / "display_probe"))
_keys = components.declare_component("lossarena_keys", path=str(_HERE / "keys"))

DEFAULT_KEYMAP = {"ArrowLeft": "left", "ArrowRight": "right", "1": "left", "2": "right",
                  "a": "left", "l": "right", "t": "toggle", "T": "toggle"}


def display_probe(key: str, card_px_start: int = 320):
    return _display_probe(card_px_start=card_px_start, key=key, default=None)


def keys(key: str, keymap: dict[str, str] | None = None):
    return _keys(keymap=keymap or DEFAULT_KEYMAP, key=key, default=None)
