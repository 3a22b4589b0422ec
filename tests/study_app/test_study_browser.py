"""The study instrument in real Chromium (Debian's /usr/bin/chromium through Playwright, no browser
download), against `lossarena study serve`'s exact command line started from a working directory whose
.streamlit/config.toml tries to switch the protections off:

* at devicePixelRatio 1, 1.25 and 2 every stimulus shown (practice and trials) covers an integer
  number of device pixels per image pixel, sits on the device-pixel grid, and its decoded pixels
  (hashed in the page through a canvas) are the study's own file;
* a reload in the middle resumes with the open pair, never repeating an answered one;
* a 1280×720 window on a 1920×1080 screen is asked to enlarge and never reaches a stimulus (until the
  window is enlarged); a phone viewport is refused with the reason;
* a bot pressing one key as fast as it can is flagged, left out of the default export, and its
  completion code makes `study verify-code` exit 4.

Screenshots of the flow at DPR 1 and 2 go to $LOSSARENA_STUDY_SCREENSHOTS when set (docs/img)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from conftest import require_service
from PIL import Image

CHROMIUM = os.environ.get("LOSSARENA_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]
T = 90_000  # ms: the machine may be busy
COMP = "iframe[title*='lossarena_study']"
CARD_PX = 323  # a 23-inch 1920x1080 screen

pytestmark = [pytest.mark.browser, pytest.mark.slow]

HASH_JS = """async () => {
  const hex = (b) => Array.from(new Uint8Array(b)).map((x) => x.toString(16).padStart(2, "0")).join("");
  let off = {left: 0, top: 0};
  try { const r = window.frameElement.getBoundingClientRect(); off = {left: r.left, top: r.top}; } catch (e) {}
  const out = [];
  for (const id of ["stimulus-left", "stimulus-right"]) {
    const im = document.querySelector('[data-testid="' + id + '"]');
    if (!im) { out.push(null); continue; }
    const r = im.getBoundingClientRect();
    const c = document.createElement("canvas");
    c.width = im.naturalWidth; c.height = im.naturalHeight;
    const ctx = c.getContext("2d");
    ctx.drawImage(im, 0, 0);
    const px = ctx.getImageData(0, 0, c.width, c.height).data;
    out.push({pair: im.dataset.pair, nw: im.naturalWidth, nh: im.naturalHeight, cw: r.width, ch: r.height,
              x: off.left + r.left, y: off.top + r.top, dpr: window.devicePixelRatio,
              hash: hex(await crypto.subtle.digest("SHA-256", px))});
  }
  return out;
}"""


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serving(cfg, base: Path, cwd: Path, browser=None):
    """Serve the built study ``cfg`` (SQLite votes in ``base``, server started in ``cwd``) on a free port,
    wait until it is healthy and launch Chromium (or reuse ``browser``: Playwright's sync API allows one
    instance per thread); yields ``(url, db, browser)`` and stops what it started."""
    from lossarena.study_app.serve import start_server, stop_server
    from playwright.sync_api import expect, sync_playwright

    db = f"sqlite:///{base / 'votes.sqlite'}"
    port = _free_port()
    log = open(base / "server.log", "w")
    proc = start_server(cfg.dir, db, port=port, stdout=log, stderr=subprocess.STDOUT, cwd=cwd)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(url + "/_stcore/health", timeout=2).status == 200:
                break
        except OSError:
            time.sleep(0.3)
    else:
        stop_server(proc)
        pytest.fail("the study app did not start: " + (base / "server.log").read_text()[-2000:])
    expect.set_options(timeout=T)
    try:
        if browser is not None:
            yield url, db, browser
        else:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
                yield url, db, browser
                browser.close()
    finally:
        stop_server(proc)
        log.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    require_service(Path(CHROMIUM).exists(), f"Chromium not found at {CHROMIUM}")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        require_service(False, "the playwright Python package is not installed")
    from lossarena.study_app.core.build import build_study
    from lossarena.study_app.core.stimuli import make_synthetic_stimuli

    base = tmp_path_factory.mktemp("browser")
    make_synthetic_stimuli(base / "stim", contents=2, target_bpps=(0.5,), max_side=700)
    # 640x480 crops: two fit side by side in a maximised 1920x1080 window, not in a 1280x720 one
    cfg = build_study(base / "stim", base / "study", crop=(640, 480), sessions=1, trials_per_participant=6,
                      traps_per_participant=2, n_practice=2, progress=False)
    hostile = base / "cwd"
    (hostile / ".streamlit").mkdir(parents=True)
    (hostile / ".streamlit" / "config.toml").write_text(
        '[client]\nshowErrorDetails = "full"\n[server]\nenableXsrfProtection = false\nenableCORS = false\n'
        'enableAgentApi = true\n')
    with serving(cfg, base, cwd=hostile) as (url, db, browser):
        yield {"cfg": cfg, "url": url, "db": db, "browser": browser, "base": base}


def _rt(s):
    from lossarena.study_app.core.session import StudyRuntime

    return StudyRuntime.open(s["cfg"].dir, s["db"])


def frame(page):
    """The study component's frame once the page has settled (no stale element of the previous run)."""
    page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']")
    page.wait_for_function("() => document.querySelectorAll('[data-stale=\"true\"]').length === 0")
    return page.frame_locator(COMP).first


def comp_frame(page):
    for f in page.frames:
        if "lossarena_study" in f.url:
            try:
                if f.evaluate("() => !!document.querySelector('[data-testid=stimulus-left]')"):
                    return f
            except Exception:  # noqa: BLE001 - a frame being replaced
                continue
    return None


def open_participant(s, pid, dpr=1.0, viewport=(1900, 960), screen=(1920, 1080), mobile=False):
    ctx = s["browser"].new_context(viewport={"width": viewport[0], "height": viewport[1]},
                                   screen={"width": screen[0], "height": screen[1]}, device_scale_factor=dpr,
                                   is_mobile=mobile, has_touch=mobile)
    page = ctx.new_page()
    page.set_default_timeout(T)
    page.goto(f"{s['url']}/?PROLIFIC_PID={pid}")
    fr = frame(page)
    fr.get_by_test_id("consent-check").check()
    fr.get_by_test_id("consent-agree").click()
    return ctx, page


def calibrate(page):
    from playwright.sync_api import expect

    fr = frame(page)
    expect(fr.get_by_test_id("display-confirm")).to_be_visible()
    fr.get_by_test_id("card-size").evaluate(
        f"(el) => {{ el.value = {CARD_PX}; el.dispatchEvent(new Event('input')); }}")
    fr.get_by_test_id("display-confirm").click()


def study_hashes(cfg) -> dict[str, set[str]]:
    """sha256 of the decoded RGBA pixels -> the study files with these pixels."""
    out: dict[str, set[str]] = {}
    for p in cfg.dir.rglob("*.png"):
        a = np.asarray(Image.open(p).convert("RGBA"))
        out.setdefault(hashlib.sha256(a.tobytes()).hexdigest(), set()).add(str(p.relative_to(cfg.dir)))
    return out


def check_pixels(page, hashes, expected: tuple[str, str]) -> str:
    """Assert pixel-exact rendering of the pair shown now; returns its pair id."""
    from playwright.sync_api import expect

    expect(frame(page).get_by_test_id("stimulus-left")).to_be_visible()
    page.wait_for_timeout(150)
    f = comp_frame(page)
    assert f is not None
    got = f.evaluate(HASH_JS)
    assert got[0]["pair"] == got[1]["pair"]
    for g, want in zip(got, expected):
        k = g["cw"] * g["dpr"] / g["nw"]
        assert abs(k - round(k)) < 1e-3 and round(k) >= 1, g  # integer device px per image px
        assert abs(g["ch"] * g["dpr"] / g["nh"] - round(k)) < 1e-3, g
        for v in (g["x"] * g["dpr"], g["y"] * g["dpr"]):
            assert abs(v - round(v)) < 0.02, g  # on the device-pixel grid: no sub-pixel resampling
        assert want in hashes.get(g["hash"], set()), (g, want)  # the decoded pixels are the study's file
    return got[0]["pair"]


def shown_pair(page) -> str:
    f = comp_frame(page)
    return f.evaluate("() => document.querySelector('[data-testid=stimulus-left]').dataset.pair")


def wait_painted(page, n_before: int) -> None:
    page.wait_for_function(f"""() => {{ const s = JSON.parse(sessionStorage.getItem('lossarena_pairs') || 'null');
        return s !== null && s.painted > {n_before} && s.state === 'showing'; }}""")


def la_stats(page) -> dict:
    """The pair counters of the study component (kept in the app page's sessionStorage, so they
    survive the component's frame when the page moves on)."""
    return json.loads(page.evaluate("() => sessionStorage.getItem('lossarena_pairs') || 'null'"))


def wait_stage_not(rt, pid, stage: str, timeout: float = 90) -> str:
    deadline = time.time() + timeout
    while rt.stage(pid) == stage and time.time() < deadline:
        time.sleep(0.1)
    return rt.stage(pid)


def do_practice(page, rt, pid, hashes=None, shots=None):
    from playwright.sync_api import expect

    assert wait_stage_not(rt, pid, "display") == "training"
    while rt.stage(pid) == "training":
        item = rt.practice_item(pid)
        attempt = rt.participant(pid)["training_attempt"]
        if hashes is not None:
            assert check_pixels(page, hashes, (item.left_path, item.right_path)) == f"p{attempt}-{item.index}"
        else:
            expect(frame(page).get_by_test_id("stimulus-left")).to_be_visible()
        page.keyboard.press("ArrowLeft" if item.correct_side == "left" else "ArrowRight")
        fr = frame(page)
        expect(fr.get_by_test_id("practice-feedback")).to_be_visible()
        if shots is not None and item.index == 0:
            shots.append(_shot(page, shots[0], "training_feedback"))
        fr.get_by_test_id("practice-continue").click()
        deadline = time.time() + 60
        while rt.practice_item(pid) is not None and rt.practice_item(pid).index == item.index and \
                rt.participant(pid)["training_attempt"] == attempt and time.time() < deadline:
            time.sleep(0.1)


def _shot(page, out_dir: Path, name: str) -> Path:
    p = out_dir / f"{name}.png"
    page.wait_for_timeout(300)
    page.screenshot(path=str(p), full_page=False)
    assert np.asarray(Image.open(p).convert("L"), dtype=float).std() > 5, f"screenshot {name} looks blank"
    return p


@pytest.mark.parametrize("dpr", [1.0, 1.25, 2.0])
def test_pixel_exact_stimuli_and_resume(served, dpr, tmp_path):
    from playwright.sync_api import expect

    s = served
    cfg = s["cfg"]
    hashes = study_hashes(cfg)
    rt = _rt(s)
    pid = f"PX{int(dpr * 100)}"
    shots_dir = tmp_path / "shots"
    shots_dir.mkdir()
    shots: list = [shots_dir]
    ctx, page = open_participant(s, pid, dpr=dpr)
    expect(frame(page).get_by_test_id("card-size")).to_be_visible()
    if dpr in (1.0, 2.0):
        frame(page).get_by_test_id("card-size").evaluate(
            f"(el) => {{ el.value = {CARD_PX}; el.dispatchEvent(new Event('input')); }}")
        shots.append(_shot(page, shots_dir, "display_check"))
    calibrate(page)
    do_practice(page, rt, pid, hashes, shots if dpr in (1.0, 2.0) else None)
    page.wait_for_function("""() => { const s = JSON.parse(sessionStorage.getItem('lossarena_pairs') || 'null');
        return s !== null && s.kind === 'trial' && s.state === 'showing'; }""")  # the app issued the first pairs
    answered = []
    for i in range(3):
        up = rt.upcoming_pairs(pid, 1)
        assert up, (rt.participant(pid), rt.store.list_events(cfg.study_id, pid))
        t = up[0]
        if dpr in (1.0, 2.0) and i == 0:
            shots.append(_shot(page, shots_dir, "trial"))
        assert check_pixels(page, hashes, (t.left_path, t.right_path)) == str(t.seq)
        before = la_stats(page)["painted"]
        page.keyboard.press("ArrowRight")
        answered.append(t.seq)
        wait_painted(page, before)
        deadline = time.time() + 60
        while len(rt.store.participant_votes(cfg.study_id, pid)) < i + 1 and time.time() < deadline:
            time.sleep(0.1)
    # reload in the middle: the open pair comes back; no answered pair is shown again
    page.reload()
    expect(frame(page).get_by_test_id("stimulus-left")).to_be_visible()
    t = rt.upcoming_pairs(pid, 1)[0]
    assert check_pixels(page, hashes, (t.left_path, t.right_path)) == str(t.seq)
    assert t.seq not in answered
    votes = rt.store.participant_votes(cfg.study_id, pid)
    assert [v["seq"] for v in votes] == answered
    for v in votes:  # the per-trial log measured in the browser
        c = v["client"]
        assert v["response_time_ms"] is not None and v["server_time_ms"] > 0
        assert c["dpr"] == dpr and (c["screen_w"], c["screen_h"]) == (1920, 1080)
        assert (c["window_w"], c["window_h"]) == (1900, 960)
    assert rt.participant(pid)["reloads"] == 1
    rt.store.dispose()
    ctx.close()
    keep = os.environ.get("LOSSARENA_STUDY_SCREENSHOTS")
    if keep and len(shots) > 1:
        Path(keep).mkdir(parents=True, exist_ok=True)
        for p in shots[1:]:
            shutil.copy(p, Path(keep) / f"study_{p.stem}_dpr{int(dpr)}.png")


def test_small_window_never_reaches_a_stimulus_and_phone_is_refused(served):
    from playwright.sync_api import expect

    s = served
    ctx, page = open_participant(s, "SMALLWIN", viewport=(1280, 720))
    fr = frame(page)
    expect(fr.get_by_test_id("window-too-small")).to_be_visible()
    expect(fr.get_by_test_id("display-confirm")).to_be_hidden()
    assert page.frame_locator(COMP).first.get_by_test_id("stimulus-left").count() == 0
    page.set_viewport_size({"width": 1900, "height": 960})  # maximised: re-checked on resize
    expect(fr.get_by_test_id("window-too-small")).to_be_hidden()
    expect(fr.get_by_test_id("display-confirm")).to_be_visible()
    page.set_viewport_size({"width": 1280, "height": 720})
    expect(fr.get_by_test_id("window-too-small")).to_be_visible()
    ctx.close()

    ctx, page = open_participant(s, "PHONE", dpr=3, viewport=(390, 844), screen=(390, 844), mobile=True)
    fr = frame(page)
    expect(fr.get_by_test_id("refused")).to_be_visible()
    expect(fr.get_by_test_id("refused")).to_contain_text("touch devices")
    assert fr.get_by_test_id("stimulus-left").count() == 0
    ctx.close()
    # the hostile config file in the server's working directory did not switch the agent API on
    doc = json.loads(urllib.request.urlopen(s["url"] + "/_stcore/agent/openapi.json", timeout=10).read())
    assert doc["info"]["x-streamlit-agent-api"] == "disabled"
    req = urllib.request.Request(s["url"] + "/_stcore/agent/interact", data=b"{}", method="POST")
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(req, timeout=10)


def test_one_key_bot_is_flagged_excluded_and_exits_4(served, tmp_path, capsys):
    import csv

    from lossarena.study_app.cli import main as study_main
    from playwright.sync_api import expect

    s = served
    cfg = s["cfg"]
    rt = _rt(s)
    ctx, page = open_participant(s, "BOT1")
    calibrate(page)
    do_practice(page, rt, "BOT1")  # the bot gets through training (peeking), then presses ← as fast as it can
    fr = page.frame_locator(COMP).first
    deadline = time.time() + 240
    while time.time() < deadline and rt.stage("BOT1") == "trials":
        for _ in range(10):
            page.keyboard.press("ArrowLeft")
    expect(frame(page).get_by_test_id("completion-code")).to_be_visible()
    code = frame(page).get_by_test_id("completion-code").inner_text().strip()
    stats = la_stats(page)
    assert stats["kind"] == "trial"
    reasons = rt.flags("BOT1")
    assert any("faster than" in r for r in reasons), reasons
    capsys.readouterr()
    assert study_main(["verify-code", str(cfg.dir), "--worker", "BOT1", "--code", code, "--db", s["db"]]) == 4
    assert "FLAGGED" in capsys.readouterr().out
    out = tmp_path / "v.csv"
    assert study_main(["export", str(cfg.dir), "--db", s["db"], "--out", str(out)]) == 0
    assert "BOT1" not in {r["participant"] for r in csv.DictReader(open(out))}
    assert study_main(["export", str(cfg.dir), "--db", s["db"], "--out", str(out), "--include-flagged"]) == 0
    assert "BOT1" in {r["participant"] for r in csv.DictReader(open(out))}
    # every key press was either recorded or visibly ignored (the counter the page shows it with)
    n_votes = len(rt.store.participant_votes(cfg.study_id, "BOT1"))
    assert stats["answered"] == n_votes and stats["answered"] + stats["ignored"] > n_votes
    assert fr is not None
    rt.store.dispose()
    ctx.close()
