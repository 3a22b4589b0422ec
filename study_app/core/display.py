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
    inner_w: float | None = None
    inner_h: float | None = None

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
            vals[k] = float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None
        return cls(**vals)

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("screen_w", "screen_h", "dpr", "card_px", "inner_w", "inner_h")}


@dataclass
class DisplayCheck:
    ok: bool
    physical_w: int
    physical_h: int
    diagonal_in: float
    reasons: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"ok": self.ok, "physical_w": self.physical_w, "physical_h": self.physical_h,
                "diagonal_in": round(self.diagonal_in, 2), "reasons": list(self.reasons)}


def evaluate_display(m: DisplayMeasurement, req: Requirements | None = None) -> DisplayCheck:
    req = req or Requirements()
    pw, ph = round(m.screen_w * m.dpr), round(m.screen_h * m.dpr)
    pw, ph = max(pw, ph), min(pw, ph)  # orientation does not matter
    px_per_mm = m.card_px / CARD_WIDTH_MM
    diag_in = math.hypot(m.screen_w, m.screen_h) / px_per_mm / MM_PER_INCH
    reasons = []
    if pw < req.min_width or ph < req.min_height:
        reasons.append(f"the screen resolution is {pw}×{ph}; the study needs at least "
                       f"{req.min_width}×{req.min_height}")
    if diag_in < req.min_diagonal_in:
        reasons.append(f"the screen measures about {diag_in:.1f} inches; the study needs more than "
                       f"{req.min_diagonal_in:g} inches")
    return DisplayCheck(not reasons, pw, ph, diag_in, reasons)
