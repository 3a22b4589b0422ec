"""The display check: resolution from the browser (CSS pixels × devicePixelRatio) and physical size
from credit-card calibration.

The browser reports ``screen.width``/``screen.height`` in CSS pixels and ``devicePixelRatio``; the
physical resolution is their product. The participant resizes an on-screen rectangle until it matches
an ID-1 card (ISO/IEC 7810: 85.60 × 53.98 mm) held against the screen; its width in CSS pixels gives
CSS pixels per millimetre, hence the screen diagonal in inches. Requirements default to the seed's:
at least 1920×1080 and a diagonal above 13 inches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from lossarena.errors import InputError

from .config import Requirements

CARD_WIDTH_MM = 85.60
CARD_HEIGHT_MM = 53.98
MM_PER_INCH = 25.4


@dataclass
class DisplayMeasurement:
    screen_w: float  # CSS pixels
    screen_h: float
    dpr: float
    card_px: float  # width of the calibrated card in CSS pixels
    inner_w: float | None = None  # window inner size, CSS pixels
    inner_h: float | None = None
    touch: bool = False  # a touch-first device (coarse pointer / touch points, measured in the browser)
    moved: bool = True  # the card control was moved from its start value

    @classmethod
    def from_dict(cls, d: dict) -> DisplayMeasurement:
        if not isinstance(d, dict):
            raise InputError("display measurement: expected a mapping")
        vals = {}
        for k, lo, hi in (("screen_w", 100, 20000), ("screen_h", 100, 20000), ("dpr", 0.25, 8),
                          ("card_px", 20, 5000)):
            v = d.get(k)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not lo <= v <= hi:
                raise InputError(f"display measurement: field {k!r} = {v!r} is not a number in [{lo}, {hi}]")
            vals[k] = float(v)
        for k in ("inner_w", "inner_h"):
            v = d.get(k)
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and 0 <= v <= 100000
            vals[k] = float(v) if ok else None
        for k, default in (("touch", False), ("moved", True)):
            v = d.get(k, default)
            if not isinstance(v, bool):
                raise InputError(f"display measurement: field {k!r} = {str(v)[:20]!r} is not true/false")
            vals[k] = v
        return cls(**vals)

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("screen_w", "screen_h", "dpr", "card_px", "inner_w", "inner_h",
                                              "touch", "moved")}


@dataclass
class DisplayCheck:
    """``ok``: passes. ``retry``: not a refusal, the participant is asked again (calibration not moved
    or implausible, window too small). Otherwise a refusal with ``reasons``."""

    ok: bool
    physical_w: int
    physical_h: int
    diagonal_in: float
    reasons: list[str] = field(default_factory=list)
    retry: bool = False

    def as_dict(self) -> dict:
        return {"ok": self.ok, "physical_w": self.physical_w, "physical_h": self.physical_h,
                "diagonal_in": round(self.diagonal_in, 2), "reasons": list(self.reasons), "retry": self.retry}


# layout around the two stimuli inside the study component (CSS px): gap between the images, side
# margins, and the answer controls + progress line below/above them
LAYOUT_GAP = 24
LAYOUT_SIDES = 16
LAYOUT_CONTROLS_H = 120
# the app page around the component on the trial pages (Streamlit's wide layout): space above the
# component and page padding left/right; used by the display check's window test
PAGE_TOP = 100
PAGE_MARGIN_X = 48


def needed_window(crop: tuple[int, int], scale: int, dpr: float, n_images: int = 2) -> tuple[float, float]:
    """Minimum inner window size (CSS px) for ``n_images`` ``crop`` stimuli side by side (2 for
    pairs, 3 for triplets) at ``scale`` and the controls, without scrolling (the component checks
    the real layout; this is the server's bound)."""
    w = crop[0] * scale / dpr
    h = crop[1] * scale / dpr
    return n_images * w + (n_images - 1) * LAYOUT_GAP + 2 * LAYOUT_SIDES, h + LAYOUT_CONTROLS_H


def evaluate_display(m: DisplayMeasurement, req: Requirements | None = None,
                     crop: tuple[int, int] | None = None, scale: int = 1, n_images: int = 2) -> DisplayCheck:
    """Check a measurement against the requirements (physical resolution, calibrated diagonal, touch)
    and, given the study's ``crop`` and ``scale``, the window size needed to show a pair unscaled."""
    req = req or Requirements()
    pw, ph = round(m.screen_w * m.dpr), round(m.screen_h * m.dpr)
    pw, ph = max(pw, ph), min(pw, ph)  # orientation does not matter
    px_per_mm = m.card_px / CARD_WIDTH_MM
    diag_in = math.hypot(m.screen_w, m.screen_h) / px_per_mm / MM_PER_INCH
    lo, hi = req.plausible_diagonal_in
    if not m.moved:
        return DisplayCheck(False, pw, ph, diag_in, ["please move the card control until the rectangle "
                                                     "has the width of your card"], retry=True)
    reasons = []
    if m.touch and not req.allow_touch:
        reasons.append("this study needs a desktop or laptop computer with a keyboard or mouse; touch "
                       "devices (phones, tablets) cannot be used")
    if pw < req.min_width or ph < req.min_height:
        reasons.append(f"the screen resolution is {pw}×{ph}; the study needs at least "
                       f"{req.min_width}×{req.min_height}")
    if reasons:
        return DisplayCheck(False, pw, ph, diag_in, reasons)
    if not lo <= diag_in <= hi:
        return DisplayCheck(False, pw, ph, diag_in, [
            f"the calibration gives a {diag_in:.1f}-inch screen, which is unlikely; please hold the card "
            "against the screen and adjust the rectangle again"], retry=True)
    if diag_in < req.min_diagonal_in:
        return DisplayCheck(False, pw, ph, diag_in, [
            f"the screen measures about {diag_in:.1f} inches; the study needs more than {req.min_diagonal_in:g} inches"])
    if crop is not None and m.inner_w is not None and m.inner_h is not None:
        nw, nh = needed_window(crop, scale, m.dpr, n_images)
        if m.inner_w < nw or m.inner_h < nh:
            return DisplayCheck(False, pw, ph, diag_in, [
                f"the browser window is {m.inner_w:.0f}×{m.inner_h:.0f}; please maximise it (at least "
                f"{nw:.0f}×{nh:.0f} at this zoom level)"], retry=True)
    return DisplayCheck(True, pw, ph, diag_in, [])
