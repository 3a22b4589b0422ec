"""Matrices, winning frequencies, significance tests and the HTML report (golden tables, browser render)."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pandas as pd
import pytest
from lossarena.analysis import (
    adjust_pvalues,
    build_report,
    pairwise_tests,
    preference_matrices,
    score_outliers,
    simulate_votes,
    winning_frequency,
)
from lossarena.analysis.cli import main as cli_main

# Three participants, one image, three conditions (hand-checked numbers below):
#   p1: a>b, a>c, b>c            (transitive)
#   p2: a>b, c>a, b>c            (a>b>c>a: one circular triad, zeta = 0)
#   p3: a=b (tie), a>c, c>b      (a tie cannot close a cycle)
SMALL = pd.DataFrame(
    {
        "participant": ["p1", "p1", "p1", "p2", "p2", "p2", "p3", "p3", "p3"],
        "content": ["img"] * 9,
        "condition_a": ["a", "a", "b", "a", "c", "b", "a", "a", "c"],
        "condition_b": ["b", "c", "c", "b", "a", "c", "b", "c", "b"],
        "winner": ["a", "a", "b", "a", "c", "b", "tie", "a", "c"],
    }
)


def test_small_study_tables_by_hand():
    wf = winning_frequency(SMALL).set_index("condition")
    # a: 2.5 (vs b) + 2 (vs c) of 6; b: 0.5 + 2 of 6; c: 1 + 1 of 6
    assert wf["wins"].to_dict() == {"a": 4.5, "b": 2.5, "c": 2.0}
    assert wf["winning_frequency"].round(6).to_dict() == {"a": 0.75, "b": round(2.5 / 6, 6), "c": round(2 / 6, 6)}
    # per-image normalisation "sum": 0.75 / 1.5 = 0.5 ...
    np.testing.assert_allclose(wf["wf_normalised"].to_numpy(), [0.5, 2.5 / 9, 2 / 9])
    mats = preference_matrices(SMALL, per_subject=True)
    conds, m = mats["group"][("img",)]
    np.testing.assert_array_equal(m, [[0, 2.5, 2], [0.5, 0, 2], [1, 1, 0]])
    subj_sum = sum(mm for (key, _), (_, mm) in mats["subjects"].items())
    np.testing.assert_array_equal(subj_sum, m)
    t = pairwise_tests(SMALL).set_index(["condition_a", "condition_b"])
    assert t.loc[("a", "b"), ["wins_a", "wins_b", "ties", "n"]].tolist() == [2, 0, 1, 3]
    assert t.loc[("a", "b"), "p_value"] == pytest.approx(0.5)  # 2 of 2 decisive, two-sided
    assert t.loc[("a", "c"), "p_value"] == pytest.approx(1.0)
    assert not t["significant"].any()
    o = score_outliers(SMALL, progress=False).set_index("participant")
    assert o["circular_triads"].to_dict() == {"p1": 0, "p2": 1, "p3": 0}
    assert o["zeta"].to_dict() == {"p1": 1.0, "p2": 0.0, "p3": 1.0}
    assert o["is_outlier"].to_dict() == {"p1": False, "p2": True, "p3": False}


def test_multiple_comparison_corrections():
    p = [0.01, 0.04, 0.03, 0.005]
    np.testing.assert_allclose(adjust_pvalues(p, "holm"), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(adjust_pvalues(p, "bh"), [0.02, 0.04, 0.04, 0.02])
    np.testing.assert_allclose(adjust_pvalues(p, "bonferroni"), [0.04, 0.16, 0.12, 0.02])
    assert np.isnan(adjust_pvalues([np.nan, 0.2], "holm")[0])


def _html_table_rows(html: str, after: str) -> list[list[str]]:
    sect = html[html.index(after):]
    table = sect[sect.index("<table>"): sect.index("</table>")]
    return [re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", r) for r in re.findall(r"<tr[^>]*>(.*?)</tr>", table)]


def test_report_golden_tables(tmp_path):
    index = build_report(SMALL, tmp_path / "rep", bootstrap=0, remove_outliers=False, progress=False,
                         title="small study")
    html = index.read_text()
    assert "<script" not in html and "http://" not in html and "https://" not in html
    for f in re.findall(r"(?:src|href)='([^']+)'", html):
        assert (index.parent / f).is_file(), f
    outl = _html_table_rows(html, "id='outliers'")
    assert outl[0] == ["participant", "circular_triads", "zeta", "likelihood_score", "is_outlier", "n_votes",
                       "flagged_by"]
    assert outl[1] == ["p2", "1", "0", "0", "yes", "3", "zeta"]
    assert sorted(r[0] for r in outl[2:]) == ["p1", "p3"]
    wf = _html_table_rows(html, "id='wf'")
    assert wf[0] == ["condition", "wf_normalised_mean", "wf_normalised_sd", "wins", "comparisons", "n_contents",
                     "winning_frequency"]
    assert wf[1] == ["a", "0.500", "&ndash;", "4.500", "6", "1", "0.750"]
    assert wf[2][:2] == ["b", "0.278"] and wf[3][:2] == ["c", "0.222"]
    oc = pd.read_csv(index.parent / "outliers.csv", dtype=str)
    assert oc["is_outlier"].tolist() == ["false", "true", "false"]
    sc = pd.read_csv(index.parent / "scores_thurstone.csv")
    assert sc.set_index("condition")["score"].idxmax() == "a"


def _not_blank(png_path) -> tuple[float, float]:
    from PIL import Image

    im = np.asarray(Image.open(png_path).convert("L"), dtype=float)
    return float(im.std()), float((im < 200).mean())


@pytest.mark.browser
def test_report_renders_in_headless_chromium(tmp_path):
    from conftest import require_service

    chromium = shutil.which("chromium")
    require_service(chromium is not None, "Chromium not installed (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover
        require_service(False, "playwright not installed")
    from lossarena.analysis import demo_truth

    votes = simulate_votes(demo_truth(2), n_observers=8, n_random=1, seed=0)
    index = build_report(votes, tmp_path / "rep", bootstrap=10, progress=False)
    shot = tmp_path / "shot.png"
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run"],
        )
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto(index.resolve().as_uri())
            page.wait_for_load_state("load")
            loaded = page.evaluate("Array.from(document.images).map(i => i.complete && i.naturalWidth > 0)")
            heading = page.inner_text("h1")
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert len(loaded) >= 6 and all(loaded)
    assert "Pairwise-comparison report" in heading
    std, dark = _not_blank(shot)
    assert std > 20 and dark > 0.02, (std, dark)


def test_cli_report_and_matrices(tmp_path):
    votes = simulate_votes({("i1", "low"): {"x": 0, "y": 1, "z": 1.5}, ("i1", "high"): {"x": 1, "y": 1.2, "z": 2}},
                           n_observers=6, seed=4)
    p = tmp_path / "votes.csv"
    votes.to_csv(p, index=False)
    assert cli_main(["report", str(p), "--out", str(tmp_path / "r"), "--bootstrap", "5"]) == 0
    for f in ("index.html", "outliers.csv", "winning_frequency.csv", "scores_thurstone.csv", "scores_bt.csv",
              "pairwise_tests.csv", "preference_matrices.csv", "figures/wf_low.png", "figures/scores_high.png",
              "figures/significance_i1_low.png"):
        assert (tmp_path / "r" / f).is_file(), f
    assert cli_main(["matrices", str(p), "--out", str(tmp_path / "m"), "--correction", "bh"]) == 0
    t = pd.read_csv(tmp_path / "m" / "pairwise_tests.csv")
    assert list(t.columns[:4]) == ["content", "group", "condition_a", "condition_b"] and len(t) == 6
