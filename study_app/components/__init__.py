"""The study's one bidirectional Streamlit component (plain HTML + JS, no build step).

``study`` draws every participant-facing step that needs the browser: consent, the display check
(screen, window and devicePixelRatio measured in the browser, card calibration, touch detection),
the practice and trial pairs, the completion code and refusals. Pairs are drawn pixel-exact: the
study's own image bytes (PNG, sent unchanged as data URLs) at CSS size = natural size × k /
devicePixelRatio, aligned to the device-pixel grid, ``image-rendering: pixelated`` when k > 1. The
trial loop runs in the browser: the component holds the current and the next pair (decoded), paints
the next one as soon as an answer is given, and sends the answers (with client timing and the
display measured at that moment) to the server, which commits them and sends the pair after next.
Streamlit itself gives an app no screen size (its issue #10987).

The ``data-testid`` names the component sets are the automation contract (docs/study.md).
"""

from __future__ import annotations

from pathlib import Path

import streamlit.components.v1 as components

_HERE = Path(__file__).parent
_study = components.declare_component("lossarena_study", path=str(_HERE / "study"))


def study(mode: str, key: str, **args):
    """Render the component in ``mode`` (consent | display | pairs | done | refused) with ``args``;
    returns its last value (a dict sent by the browser, or None)."""
    return _study(mode=mode, key=key, default=None, **args)
