"""The triplet design (JPEG AIC-3) in real Chromium (Debian's /usr/bin/chromium through Playwright),
against `lossarena study serve`'s command line:

* at devicePixelRatio 1 and 2 the three images of a triplet (left, reference, right) are the study's
  own files decoded unchanged (pixels hashed in the page), cover an integer number of device pixels
  per image pixel and sit on the device-pixel grid; in a zoomed (boosted) triplet every source pixel
  becomes exactly zoom x zoom device pixels (a device-pixel screenshot of the drawn image equals the
  file repeated zoom x zoom);
* the flicker rate measured in the page (visibility of the left test image sampled at every
  animation frame for 1.5 s, timed with performance.now) matches the study's flicker period;
* the answer buttons and keys record votes ("left differs more" -> the right image is the winner);
* the AIC-3 options (a second study, short timings set in its config): Lanczos zoom files drawn 1:1
  (pixels hashed = the file), a boosted triplet blanked after its showing time (measured in the page)
  and answerable while blanked, a plain triplet refusing answers before one toggle, toggles limited
  in rate, and answers after the window logged as late.
"""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import require_service
from PIL import Image
from test_study_browser import CARD_PX, CHROMIUM, COMP, T, comp_frame, frame, la_stats, serving

pytestmark = [pytest.mark.browser, pytest.mark.slow]

HASH3_JS = """async () => {
  const hex = (b) => Array.from(new Uint8Array(b)).map((x) => x.toString(16).padStart(2, "0")).join("");
  let off = {left: 0, top: 0};
  try { const r = window.frameElement.getBoundingClientRect(); off = {left: r.left, top: r.top}; } catch (e) {}
  const out = {};
  for (const id of ["stimulus-left", "stimulus-reference", "stimulus-right"]) {
    const im = document.querySelector('[data-testid="' + id + '"]');
    if (!im) { out[id] = null; continue; }
    const r = im.getBoundingClientRect();
    const c = document.createElement("canvas");
    c.width = im.naturalWidth; c.height = im.naturalHeight;
    const ctx = c.getContext("2d");
    ctx.drawImage(im, 0, 0);
    const px = ctx.getImageData(0, 0, c.width, c.height).data;
    out[id] = {pair: im.dataset.pair, nw: im.naturalWidth, nh: im.naturalHeight, cw: r.width, ch: r.height,
               x: off.left + r.left, y: off.top + r.top, dpr: window.devicePixelRatio,
               rendering: getComputedStyle(im).imageRendering,
               hash: hex(await crypto.subtle.digest("SHA-256", px))};
  }
  return out;
}"""

FLICKER_JS = """(ms) => new Promise((resolve) => {
  const im = document.querySelector('[data-testid="stimulus-left"]');
  let last = getComputedStyle(im).visibility, t0 = null, swaps = [];
  const step = (now) => {
    if (t0 === null) t0 = now;
    const v = getComputedStyle(im).visibility;
    if (v !== last) { swaps.push(now - t0); last = v; }
    if (now - t0 < ms) requestAnimationFrame(step); else resolve({swaps: swaps, elapsed: now - t0});
  };
  requestAnimationFrame(step);
})"""


@pytest.fixture(scope="module")
def served3(tmp_path_factory):
    from lossarena.study_app.core.config import TripletSettings

    yield from _serve(tmp_path_factory, "triplet_browser",
                      TripletSettings(plain_fraction=0.3, trap_rate=0.0, bias_rate=0.0, zoom=2, flicker_period_ms=100))


# AIC-3 timing with short times, so the test stays fast (AIC-3 itself: 8 s + 3 s; 30 s; 500 ms)
AIC3_SHORT = dict(btc_show_ms=700, btc_blank_ms=1500, ptc_window_ms=1500, ptc_min_toggles=1, ptc_toggle_min_ms=500)


@pytest.fixture(scope="module")
def served_aic3(tmp_path_factory, served3):
    from lossarena.study_app.core.config import TripletSettings

    yield from _serve(tmp_path_factory, "triplet_aic3",
                      TripletSettings(plain_fraction=0.5, trap_rate=0.0, bias_rate=0.0, zoom=2, flicker_period_ms=100,
                                      zoom_resample="lanczos", timing="aic3", **AIC3_SHORT),
                      browser=served3["browser"])


def _serve(tmp_path_factory, name, settings, browser=None):
    require_service(Path(CHROMIUM).exists(), f"Chromium not found at {CHROMIUM}")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        require_service(False, "the playwright Python package is not installed")
    from lossarena.study_app.core.build import build_study
    from lossarena.study_app.core.stimuli import make_synthetic_stimuli

    base = tmp_path_factory.mktemp(name)
    make_synthetic_stimuli(base / "stim", contents=2, target_bpps=(0.3, 0.8), max_side=480)
    cfg = build_study(base / "stim", base / "study", crop=(400, 300), sessions=1, trials_per_participant=10,
                      n_practice=1, progress=False, design="triplet", triplet=settings)
    with serving(cfg, base, cwd=base, browser=browser) as (url, db, browser):
        yield {"cfg": cfg, "url": url, "db": db, "browser": browser}


def _rt(s):
    from lossarena.study_app.core.session import StudyRuntime

    return StudyRuntime.open(s["cfg"].dir, s["db"])


def _to_trials(s, rt, pid, dpr):
    """Consent, display check and the practice triplet (answered right); returns the page."""
    from playwright.sync_api import expect

    ctx = s["browser"].new_context(viewport={"width": 1900, "height": 960}, screen={"width": 1920, "height": 1080},
                                   device_scale_factor=dpr)
    page = ctx.new_page()
    page.set_default_timeout(T)
    page.goto(f"{s['url']}/?PROLIFIC_PID={pid}")
    fr = frame(page)
    fr.get_by_test_id("consent-check").check()
    fr.get_by_test_id("consent-agree").click()
    fr = frame(page)
    expect(fr.get_by_test_id("display-confirm")).to_be_visible()
    fr.get_by_test_id("card-size").evaluate(f"(el) => {{ el.value = {CARD_PX}; el.dispatchEvent(new Event('input')); }}")
    fr.get_by_test_id("display-confirm").click()
    deadline = time.time() + 90
    while rt.stage(pid) == "display" and time.time() < deadline:
        time.sleep(0.1)
    while rt.stage(pid) == "training":
        item = rt.practice_item(pid)
        fr = frame(page)
        expect(fr.get_by_test_id("stimulus-reference")).to_be_visible()  # practice triplets too
        expect(fr.get_by_test_id("vote-left-more")).to_be_visible()
        page.keyboard.press("ArrowLeft" if item.correct_side == "left" else "ArrowRight")
        expect(frame(page).get_by_test_id("practice-feedback")).to_contain_text("differs more from the reference")
        frame(page).get_by_test_id("practice-continue").click()
        deadline = time.time() + 60
        while rt.practice_item(pid) is not None and time.time() < deadline:
            time.sleep(0.1)
    page.wait_for_function("""() => { const s = JSON.parse(sessionStorage.getItem('lossarena_pairs') || 'null');
        return s !== null && s.kind === 'trial' && s.state === 'showing'; }""")
    return ctx, page


def _file_hash(cfg, rel) -> str:
    import hashlib

    return hashlib.sha256(np.asarray(Image.open(cfg.dir / rel).convert("RGBA")).tobytes()).hexdigest()


def _check_triplet(page, cfg, t, zoom: int) -> dict:
    from playwright.sync_api import expect

    expect(frame(page).get_by_test_id("stimulus-reference")).to_be_visible()
    page.wait_for_timeout(150)
    f = comp_frame(page)
    got = f.evaluate(HASH3_JS)
    for tid, rel in (("stimulus-left", t.left_path), ("stimulus-reference", t.pivot_path),
                     ("stimulus-right", t.right_path)):
        g = got[tid]
        assert g is not None and g["pair"] == str(t.seq), (tid, g)
        assert g["hash"] == _file_hash(cfg, rel), (tid, rel)  # decoded pixels = the study's file
        k = g["cw"] * g["dpr"] / g["nw"]
        assert abs(k - zoom * cfg.scale) < 1e-3 and abs(g["ch"] * g["dpr"] / g["nh"] - k) < 1e-3, g
        for v in (g["x"] * g["dpr"], g["y"] * g["dpr"]):
            assert abs(v - round(v)) < 0.02, g  # on the device-pixel grid
        if zoom > 1:
            assert g["rendering"] == "pixelated", g
    return got


def _wait_vote(rt, cfg, pid, n, timeout=60):
    deadline = time.time() + timeout
    while len(rt.store.participant_votes(cfg.study_id, pid)) < n and time.time() < deadline:
        time.sleep(0.1)
    return rt.store.participant_votes(cfg.study_id, pid)


def _answer_and_wait(page, rt, cfg, pid, key, n_before):
    before = la_stats(page)["painted"]
    page.keyboard.press(key)
    votes = _wait_vote(rt, cfg, pid, n_before + 1)
    if rt.stage(pid) == "trials" and rt.upcoming_pairs(pid, 1):
        page.wait_for_function(f"""() => {{ const s = JSON.parse(sessionStorage.getItem('lossarena_pairs') || 'null');
            return s !== null && s.painted > {before} && s.state === 'showing'; }}""")
    return votes


@pytest.mark.parametrize("dpr", [1.0, 2.0])
def test_triplet_pixel_exact_zoom_and_flicker(served3, dpr):
    s = served3
    cfg = s["cfg"]
    rt = _rt(s)
    pid = f"TRI{int(dpr * 100)}"
    ctx, page = _to_trials(s, rt, pid, dpr)
    seen_plain = seen_boost = False
    n = 0
    while rt.stage(pid) == "trials" and not (seen_plain and seen_boost):
        t = rt.upcoming_pairs(pid, 1)[0]
        boosted = t.boost != "plain"
        _check_triplet(page, cfg, t, 2 if boosted else 1)
        keep = os.environ.get("LOSSARENA_STUDY_SCREENSHOTS")
        if keep and ((boosted and not seen_boost) or (not boosted and not seen_plain)):
            Path(keep).mkdir(parents=True, exist_ok=True)
            page.wait_for_timeout(300)
            page.screenshot(path=str(Path(keep) / f"study_triplet_{'boosted' if boosted else 'plain'}_dpr{int(dpr)}.png"))
        if boosted and not seen_boost:
            seen_boost = True
            f = comp_frame(page)
            m = f.evaluate(FLICKER_JS, 1500)
            rate = len(m["swaps"]) / (m["elapsed"] / 1000.0)
            want = 1000.0 / cfg.triplet.flicker_period_ms  # swaps per second
            assert abs(rate - want) <= 0.2 * want, m
            gaps = np.diff(m["swaps"])
            print(f"flicker at DPR {dpr}: {len(m['swaps'])} swaps in {m['elapsed']:.0f} ms = {rate:.2f}/s "
                  f"(want {want:.2f}/s), median gap {np.median(gaps):.1f} ms")
            assert abs(np.median(gaps) - cfg.triplet.flicker_period_ms) <= 25, m
            # pause the flicker (T): the test images stay; each source pixel is exactly zoom x zoom device pixels
            page.keyboard.press("t")
            page.wait_for_timeout(250)
            loc = page.frame_locator(COMP).first.get_by_test_id("stimulus-left")
            shot = np.asarray(Image.open(io.BytesIO(loc.screenshot(animations="disabled"))).convert("RGB"))
            src = np.asarray(Image.open(cfg.dir / t.left_path).convert("RGB"))
            want_px = np.kron(src, np.ones((2 * cfg.scale, 2 * cfg.scale, 1), dtype=np.uint8))
            assert shot.shape == want_px.shape, (shot.shape, want_px.shape)
            assert np.array_equal(shot, want_px), float(np.abs(shot.astype(int) - want_px).max())
        elif not boosted:
            seen_plain = True
        votes = _answer_and_wait(page, rt, cfg, pid, ["ArrowLeft", "ArrowRight", "n"][n % 3], n)
        n += 1
        assert len(votes) == n
    assert seen_plain and seen_boost
    votes = rt.store.participant_votes(cfg.study_id, pid)
    for v, want in zip(votes, ["left", "right", "notsure"] * 5):
        assert v["client"]["answer"] == want
        closer = {"left": v["condition_b"], "right": v["condition_a"], "notsure": "tie"}[want]
        assert v["winner"] == closer
        c = v["client"]
        assert c["dpr"] == dpr and (c["window_w"], c["window_h"]) == (1900, 960) and v["response_time_ms"] > 0
    assert any(v["client"]["toggles"] >= 1 for v in votes)  # the pause was logged as a toggle
    rt.store.dispose()
    ctx.close()


def test_triplet_buttons_record_votes(served3):
    from playwright.sync_api import expect

    s = served3
    cfg = s["cfg"]
    rt = _rt(s)
    pid = "TRIBTN"
    ctx, page = _to_trials(s, rt, pid, 1.0)
    for i, (tid, want) in enumerate((("vote-left-more", "left"), ("vote-right-more", "right"),
                                     ("vote-notsure", "notsure"))):
        t = rt.upcoming_pairs(pid, 1)[0]
        expect(frame(page).get_by_test_id("stimulus-reference")).to_be_visible()
        page.wait_for_function("""() => { const s = JSON.parse(sessionStorage.getItem('lossarena_pairs') || 'null');
            return s !== null && s.state === 'showing'; }""")
        frame(page).get_by_test_id(tid).click()
        votes = _wait_vote(rt, cfg, pid, i + 1)
        v = votes[-1]
        assert v["seq"] == t.seq and v["client"]["answer"] == want
        assert v["winner"] == {"left": t.right, "right": t.left, "notsure": "tie"}[want]
    rt.store.dispose()
    ctx.close()


def test_triplet_aic3_lanczos_blank_and_toggle_rules(served_aic3):
    from playwright.sync_api import expect

    s = served_aic3
    cfg = s["cfg"]
    assert cfg.triplet.zoom_resample == "lanczos" and cfg.triplet.timing == "aic3"
    rt = _rt(s)
    pid = "TRIAIC3"
    ctx, page = _to_trials(s, rt, pid, 1.0)
    seen_plain = seen_boost = False
    n = 0
    while rt.stage(pid) == "trials" and not (seen_plain and seen_boost):
        t = rt.upcoming_pairs(pid, 1)[0]
        boosted = t.boost != "plain"
        if boosted:
            assert Image.open(cfg.dir / t.pivot_path).size == (400, 300)  # the 200 x 150 region, Lanczos x 2
        _check_triplet(page, cfg, t, 1)  # drawn 1:1: the Lanczos file itself (hashed), or the plain one
        f = comp_frame(page)
        if boosted and not seen_boost:
            seen_boost = True
            f.wait_for_function("() => window.__la.timing && window.__la.timing.blanked !== null", timeout=T)
            tm = f.evaluate("() => window.__la.timing")
            shown_for = tm["blanked"] - tm["shown"]
            print(f"boosted triplet blanked after {shown_for:.0f} ms (want {AIC3_SHORT['btc_show_ms']} ms)")
            assert AIC3_SHORT["btc_show_ms"] - 5 <= shown_for <= AIC3_SHORT["btc_show_ms"] + 300, tm
            vis = f.evaluate("""() => ["stimulus-left", "stimulus-reference", "stimulus-right",
                "flicker-reference-left"].map((id) => getComputedStyle(
                document.querySelector('[data-testid="' + id + '"]')).visibility)""")
            assert vis == ["hidden"] * 4, vis  # blanked, flicker stopped
            votes = _answer_and_wait(page, rt, cfg, pid, "ArrowLeft", n)  # answered while blanked
            c = votes[-1]["client"]
            assert c["blanked"] == 1 and c["answer"] == "left", c
            assert c["late"] == 0 or votes[-1]["response_time_ms"] >= 2200 - 50, (c, votes[-1])
        elif not boosted and not seen_plain:
            seen_plain = True
            page.keyboard.press("ArrowRight")  # before any toggle: refused, visibly
            expect(frame(page).get_by_test_id("pair-status")).to_contain_text("at least once")
            page.wait_for_timeout(300)
            assert len(rt.store.participant_votes(cfg.study_id, pid)) == n
            assert f.evaluate("() => window.__la.refused_toggle") == 1
            for _ in range(3):  # three presses within ~100 ms: one toggle (at most one per 500 ms)
                page.keyboard.press("t")
            assert f.evaluate("() => [window.__la.toggles, window.__la.toggle_limited]") == [1, 2]
            vis = f.evaluate("""() => ["stimulus-left", "flicker-reference-left"].map((id) => getComputedStyle(
                document.querySelector('[data-testid="' + id + '"]')).visibility)""")
            assert vis == ["hidden", "visible"], vis  # the reference shown in place
            f.wait_for_function("() => window.__la.timing && window.__la.timing.over !== null", timeout=T)
            tm = f.evaluate("() => window.__la.timing")
            assert AIC3_SHORT["ptc_window_ms"] - 5 <= tm["over"] - tm["shown"] <= AIC3_SHORT["ptc_window_ms"] + 300
            votes = _answer_and_wait(page, rt, cfg, pid, "ArrowRight", n)  # after the window: taken, late
            c = votes[-1]["client"]
            assert (c["late"], c["blanked"], c["toggles"], c["answer"]) == (1, 0, 1, "right"), c
        else:
            page.keyboard.press("t")
            votes = _answer_and_wait(page, rt, cfg, pid, "n", n)
        n += 1
        assert len(votes) == n
    assert seen_plain and seen_boost
    rt.store.dispose()
    ctx.close()
