"""The reduced demo end to end: every stage runs, the page links real, finite results, and it renders.

Runs ``lossarena demo --scale small`` (the same code path as ``make demo``, fewer steps) on two
256×256 Kodak crops (evaluation images; the fine-tunes train on the bundled non-Kodak photographs) so
that it fits the test budget; the Chromium screenshot of ``index.html`` must not be blank.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import require_service
from lossarena.pipeline.demo import main as demo_main
from PIL import Image

from lossarena.paths import require_shared

pytestmark = pytest.mark.slow

STAGES = ("metrics", "zoo", "roi", "stimuli", "study", "analysis", "benchmark", "plan")


def _images(folder: Path) -> Path:
    kodak = require_shared("images", "kodak24")
    folder.mkdir(parents=True)
    for name in ("kodim05", "kodim23"):
        a = np.asarray(Image.open(kodak / f"{name}.png").convert("RGB"))
        h, w = a.shape[:2]
        y, x = (h - 256) // 2, (w - 256) // 2
        Image.fromarray(np.ascontiguousarray(a[y:y + 256, x:x + 256])).save(folder / f"{name}.png")
    return folder


def _finite_numbers(csv: Path) -> None:
    df = pd.read_csv(csv)
    assert len(df) > 0, f"{csv} is empty"
    num = df.select_dtypes("number")
    assert num.shape[1] > 0, f"{csv} has no numeric column"
    vals = num.to_numpy(float)
    # a column may be legitimately empty (e.g. bpp of the reference rows); what is there must be finite
    assert np.isfinite(vals[~np.isnan(vals)]).all(), f"{csv} has inf values"


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("demo")
    images = _images(root / "imgs")
    out = root / "demo-output"
    assert demo_main(["--scale", "small", "--out", str(out), "--images", str(images), "--n-images", "2"]) == 0
    return out


def test_every_stage_ran_and_wrote_its_files(demo_out):
    for st in STAGES:
        marker = demo_out / st / "stage.json"
        assert marker.exists(), f"stage {st} did not finish"
        info = json.loads(marker.read_text())
        assert info["_seconds"] > 0
    for csv in ("metrics/jpeg_scores.csv", "zoo/results.csv", "roi/roi_results.csv", "stimuli/manifest.csv",
                "study/votes.csv", "benchmark/acc.csv"):
        _finite_numbers(demo_out / csv)
    man = pd.read_csv(demo_out / "stimuli" / "manifest.csv")
    assert {"reference", "mse", "roi", "jpeg"} <= set(man["condition"])
    assert man["target_bpp"].dropna().nunique() == 3
    votes = pd.read_csv(demo_out / "study" / "votes.csv")
    assert list(votes.columns[:5]) == ["participant", "content", "condition_a", "condition_b", "winner"]
    assert votes["participant"].nunique() >= 5
    acc = pd.read_csv(demo_out / "benchmark" / "acc.csv")
    assert list(acc.columns) == ["metric", "score_2afc", "accuracy", "ci_low", "ci_high", "n"]
    assert {"psnr", "ssim"} <= set(acc["metric"])
    assert (demo_out / "analysis" / "index.html").exists()
    assert (demo_out / "zoo" / "rd.png").stat().st_size > 10_000


def test_index_links_resolve_and_tables_are_filled(demo_out):
    index = demo_out / "index.html"
    text = index.read_text()
    for st in ("Metrics on JPEG copies", "Codec zoo", "ROI codec", "Rate-matched stimuli", "simulated participants",
               "Analysis", "Metric accuracy"):
        assert st in text
    assert "not run" not in text
    links = re.findall(r"(?:href|src)='([^']+)'", text)
    assert len(links) >= 8
    for link in links:
        assert not link.startswith(("http:", "https:", "/")), f"non-local link {link}"
        assert (demo_out / link).exists(), f"broken link {link}"
    assert text.count("<table") >= 5
    assert "nan" not in re.sub(r"<[^>]+>", " ", text).split()


def test_index_renders_in_chromium(demo_out, tmp_path):
    chromium = shutil.which("chromium") or (Path("/usr/bin/chromium") if Path("/usr/bin/chromium").exists() else None)
    require_service(chromium is not None, "Chromium not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    shot = tmp_path / "index.png"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(chromium), args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--no-first-run"])
        try:
            page = b.new_page(viewport={"width": 1200, "height": 900})
            page.goto((demo_out / "index.html").as_uri())
            page.wait_for_load_state("load")
            page.screenshot(path=str(shot), full_page=True)
            n_img = page.evaluate("Array.from(document.images).filter(i => i.complete && i.naturalWidth > 0).length")
        finally:
            b.close()
    assert n_img >= 4
    a = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert a.shape[0] > 1500  # a long page, not just a title
    assert a.std() > 10, "screenshot is blank"


def test_the_known_answer_is_checked(demo_out):
    a = json.loads((demo_out / "analysis" / "stage.json").read_text())
    # the scale follows the hidden truth (12 participants: sparse, unanimous pairs stretch the scale, so the
    # MAE is large here; the default profile's 40 participants tighten both)
    assert np.isfinite(a["truth_r"]) and a["truth_r"] > 0.3, a["truth_r"]
    assert np.isfinite(a["truth_mae"]) and a["truth_mae"] >= 0
    assert a["n_careless"] >= 1 and 0 <= a["catch_rate"] <= 1
    caught = pd.read_csv(demo_out / "analysis" / "careless_caught.csv")
    assert set(caught["kind"]) >= {"honest", "always_left"}
    assert (caught["caught"] + caught["missed"] == caught["n"]).all()
    truth = pd.read_csv(demo_out / "study" / "truth.csv")
    assert truth["true_jod"].std(ddof=0) == pytest.approx(3.0, rel=0.01)  # the profile's jod_spread
    plan = json.loads((demo_out / "plan" / "stage.json").read_text())
    assert plan["ran"] == 12 and "adjacent" in plan["required"]
    pw = pd.read_csv(demo_out / "plan" / "plan.csv")["power_adjacent"]
    assert pw.iloc[-1] > pw.iloc[0]
    zoo = json.loads((demo_out / "zoo" / "stage.json").read_text())
    assert zoo["base"]["route"] == "shipped" and len(zoo["base"]["sha256"]) == 64
    assert np.isfinite(zoo["base_psnr"]) and zoo["base_psnr"] > 15
    text = (demo_out / "index.html").read_text()
    assert text.index("The answer") < text.index("How far to trust it") < text.index("stage by stage")
    assert "Traceback" not in text and "UserWarning" not in text
