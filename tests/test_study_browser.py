"""End to end in real Chromium (Debian's /usr/bin/chromium through Playwright, no browser download):
a participant completes a short study through the served Streamlit app, using the mouse and the
keyboard shortcuts; a small screen is refused; the admin page opens with the secret. A screenshot of
every page is saved (after waiting for the page's own elements: a plain screenshot would only show
the title, PITFALLS.md)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import study_fixtures
from conftest import require_service
from lossarena.study_app.core.security import verify_completion_code
from lossarena.study_app.serve import start_server
from PIL import Image

stimuli_dir = study_fixtures.stimuli_dir
make_study = study_fixtures.make_study
CHROMIUM = os.environ.get("LOSSARENA_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]
T = 90_000  # ms: the machine may be busy

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(make_study, tmp_path):
    ok = Path(CHROMIUM).exists()
    require_service(ok, f"Chromium not found at {CHROMIUM}")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        require_service(False, "the playwright Python package is not installed")
    cfg = make_study(sessions=1, trials_per_participant=3, traps_per_participant=1, n_practice=2,
                     crop=(480, 360))
    port = _free_port()
    log = open(tmp_path / "server.log", "w")
    proc = start_server(cfg.dir, f"sqlite:///{tmp_path / 'votes.sqlite'}", port=port, stdout=log,
                        stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(url + "/_stcore/health", timeout=2).status == 200:
                break
        except OSError:
            time.sleep(0.3)
    else:
        proc.kill()
        pytest.fail("the study app did not start: " + (tmp_path / "server.log").read_text()[-2000:])
    yield cfg, url
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def settle(page) -> None:
    """Wait until the script run is over and no stale element of the previous run is left."""
    page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']")
    page.wait_for_function("() => document.querySelectorAll('[data-stale=\"true\"]').length === 0")


def click(page, name: str) -> None:
    """Click the one button with this name once the page has settled."""
    from playwright.sync_api import expect

    if hasattr(page, "wait_for_selector"):  # a page, not a component's frame
        settle(page)
    loc = page.get_by_role("button", name=name)
    expect(loc).to_have_count(1)
    loc.click()


def _shot(page, out: Path, name: str) -> Path:
    p = out / f"{name}.png"
    page.wait_for_timeout(400)  # let images finish painting
    page.screenshot(path=str(p), full_page=True)
    a = np.asarray(Image.open(p).convert("L"), dtype=float)
    assert a.std() > 5, f"screenshot {name} looks blank"
    return p


def test_participant_completes_study_in_chromium(server, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=T)
    cfg, url = server
    out = tmp_path / "screens"
    out.mkdir()
    shots = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        ctx = browser.new_context(viewport={"width": 1920, "height": 1080}, screen={"width": 1920, "height": 1080},
                                  device_scale_factor=1)
        page = ctx.new_page()
        page.set_default_timeout(T)

        page.goto(url + "/")
        expect(page.get_by_text("Please open the study through the link").first).to_be_visible()
        shots.append(_shot(page, out, "0_gate"))

        page.goto(url + "/?workerId=PW-1")
        expect(page.get_by_text("Information and consent").first).to_be_visible()
        shots.append(_shot(page, out, "1_consent"))
        page.get_by_text("I have read the information above").click()
        click(page, "Continue")

        expect(page.get_by_role("heading", name="Display check")).to_be_visible()
        frame = page.frame_locator("iframe[title*='display_probe']")
        expect(frame.get_by_text("Screen: 1920 × 1080").first).to_be_visible()
        slider = frame.locator("#s")
        slider.evaluate("(el) => { el.value = 330; el.dispatchEvent(new Event('input')); }")
        shots.append(_shot(page, out, "2_display_check"))
        click(frame, "The rectangle matches my card")

        expect(page.get_by_role("heading", name="Training")).to_be_visible()
        expect(page.locator("img").first).to_be_visible()
        shots.append(_shot(page, out, "3_training"))
        settle(page)
        page.wait_for_timeout(1000)  # the keyboard component's iframe must have loaded
        page.keyboard.press("ArrowLeft")  # keyboard shortcut
        expect(page.get_by_text("Practice pair 2 of 2").first).to_be_visible()
        expect(page.get_by_text("Correct, well done.").or_(page.get_by_text("Not quite")).first).to_be_visible()
        shots.append(_shot(page, out, "4_training_feedback"))
        click(page, "Right is better")

        expect(page.get_by_text("Which image has the better quality?").first).to_be_visible()
        expect(page.get_by_text("Pair 1 of about 4").first).to_be_visible()
        expect(page.locator("img").nth(1)).to_be_visible()
        shots.append(_shot(page, out, "5_trial"))
        page.get_by_text("Toggle view: show the two images").click()
        expect(page.get_by_role("button", name="Switch image [T]")).to_be_visible()
        shots.append(_shot(page, out, "6_trial_toggle"))
        page.get_by_text("Toggle view: show the two images").click()
        expect(page.get_by_role("button", name="Switch image [T]")).to_have_count(0)

        settle(page)
        page.wait_for_timeout(1000)
        page.keyboard.press("ArrowRight")
        expect(page.get_by_text("Pair 2 of about 4").first).to_be_visible()
        for n in (3, 4):
            click(page, "A (left) is better")
            if n <= 4:
                expect(page.get_by_text(f"Pair {n} of about 4").first).to_be_visible()
        # reload in the middle: the same pair comes back (nothing is lost or skipped)
        page.reload()
        expect(page.get_by_text("Pair 4 of about 4").first).to_be_visible()
        click(page, "B (right) is better")

        expect(page.get_by_role("heading", name="Thank you!")).to_be_visible()
        code = page.locator("pre code, pre").first.inner_text().strip()
        shots.append(_shot(page, out, "7_done"))
        assert verify_completion_code(cfg.secret, cfg.study_id, "PW-1", code), code

        # a small screen is politely refused
        small = browser.new_context(viewport={"width": 1366, "height": 700}, screen={"width": 1366, "height": 768},
                                    device_scale_factor=1)
        sp = small.new_page()
        sp.set_default_timeout(T)
        sp.goto(url + "/?PROLIFIC_PID=PW-small")
        sp.get_by_text("I have read the information above").click()
        click(sp, "Continue")
        sp.frame_locator("iframe[title*='display_probe']").get_by_role(
            "button", name="The rectangle matches my card").click()
        expect(sp.get_by_text("Thank you for your interest").first).to_be_visible()
        expect(sp.get_by_text("1366×768").first).to_be_visible()
        shots.append(_shot(sp, out, "8_refused"))

        # admin: secret required
        page.goto(url + "/admin")
        expect(page.get_by_role("heading", name="Study admin")).to_be_visible()
        expect(page.get_by_text("PW-1")).to_have_count(0)
        page.get_by_label("Admin secret").fill(cfg.admin_secret)
        click(page, "Log in")
        expect(page.get_by_text("Progress per content and condition").first).to_be_visible()
        expect(page.get_by_role("button", name="Download votes.csv")).to_be_visible()
        shots.append(_shot(page, out, "9_admin"))
        browser.close()

    from lossarena.study_app.core.store import open_store

    st = open_store(f"sqlite:///{tmp_path / 'votes.sqlite'}")
    votes = st.participant_votes(cfg.study_id, "PW-1")
    st.dispose()
    assert len(votes) == 4 and len({v["seq"] for v in votes}) == 4
    assert len(shots) == 10
    keep = os.environ.get("LOSSARENA_STUDY_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        for p in shots:
            shutil.copy(p, Path(keep) / p.name)
