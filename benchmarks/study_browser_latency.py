"""Click/key -> next pair fully painted, in real Chromium against `lossarena study serve`.

Usage::

    nice -n 10 .venv/bin/python benchmarks/study_browser_latency.py [--pairs 32] [--participants 6]
        [--think-ms 600] [--out benchmarks/RESULTS_study.md]

Builds a synthetic study (640x480 crops, 'full' sampler, no practice so every answer is a trial),
starts the server with the same command line as `lossarena study serve`, then:

1. one participant answers ``--pairs`` pairs (alternating mouse clicks on vote-left/vote-right and
   the arrow keys) with a think time of ``--think-ms`` (±50 %, uniform) after each pair is painted;
2. ``--participants`` participants at once (one Chromium, one browser context each, all on this
   machine) do the same.

Latency = from the input event to the moment the next pair's two (already decoded) images have
been painted (second animation frame after the swap), measured in the page by the study component
(``performance`` clock of the component's frame). Lost inputs = inputs sent - (answers recorded by
the component + inputs it ignored visibly while a pair was loading); votes in the database are
checked against the answers. The table is appended to ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

CHROMIUM = os.environ.get("LOSSARENA_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-renderer-backgrounding",
        "--disable-background-timer-throttling", "--disable-backgrounding-occluded-windows"]
STATS_JS = "() => JSON.parse(sessionStorage.getItem('lossarena_pairs') || 'null')"
COMP = "iframe[title*='lossarena_study']"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _settled_frame(page):
    await page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']", timeout=120_000)
    await page.wait_for_function("() => document.querySelectorAll('[data-stale=\"true\"]').length === 0",
                                 timeout=120_000)
    return page.frame_locator(COMP).first


async def participant(browser, url: str, pid: str, n_pairs: int, think_ms: float, seed: int) -> dict:
    rng = random.Random(seed)
    ctx = await browser.new_context(viewport={"width": 1900, "height": 960}, screen={"width": 1920, "height": 1080})
    page = await ctx.new_page()
    page.set_default_timeout(120_000)
    await page.goto(f"{url}/?PROLIFIC_PID={pid}")
    fr = await _settled_frame(page)
    await fr.get_by_test_id("consent-check").check()
    await fr.get_by_test_id("consent-agree").click()
    fr = await _settled_frame(page)
    await fr.get_by_test_id("card-size").evaluate("(el) => { el.value = 323; el.dispatchEvent(new Event('input')); }")
    await fr.get_by_test_id("display-confirm").click()
    await page.wait_for_function("() => { const s = JSON.parse(sessionStorage.getItem('lossarena_pairs') || 'null');"
                                 " return s && s.kind === 'trial' && s.state === 'showing'; }", timeout=180_000)
    fr = page.frame_locator(COMP).first
    sent = 0
    for i in range(n_pairs):
        st = await page.evaluate(STATS_JS)
        if st is None or st.get("kind") != "trial":
            break  # the study is over for this participant
        # wait until a pair is painted (a human answers what they see), then think
        try:
            await page.wait_for_function(f"() => {{ const s = JSON.parse(sessionStorage.getItem('lossarena_pairs')"
                                         f" || 'null'); return s && s.state === 'showing' && s.painted > {i}; }}",
                                         timeout=60_000)
        except Exception:  # noqa: BLE001 - the page moved on to the completion code
            break
        await asyncio.sleep(think_ms / 1000 * rng.uniform(0.5, 1.5))
        if i % 2 == 0:
            await fr.get_by_test_id("vote-left" if rng.random() < 0.5 else "vote-right").click()
        else:
            await page.keyboard.press("ArrowLeft" if rng.random() < 0.5 else "ArrowRight")
        sent += 1
    try:  # every answer confirmed committed by the server (the component shows "saving" until then)
        await page.wait_for_function("() => { const s = JSON.parse(sessionStorage.getItem('lossarena_pairs') "
                                     "|| 'null'); return s && s.unacked === 0; }", timeout=120_000)
    except Exception:  # noqa: BLE001 - reported below as answers missing from the database
        pass
    st = await page.evaluate(STATS_JS) or {}
    await ctx.close()
    return {"pid": pid, "sent": sent, "answered": st.get("answered", 0), "ignored": st.get("ignored", 0),
            "latencies": st.get("latencies", [])}


async def run_phase(url: str, n: int, n_pairs: int, think_ms: float, tag: str) -> list[dict]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        res = await asyncio.gather(*[participant(browser, url, f"{tag}{k}", n_pairs, think_ms, k) for k in range(n)])
        await browser.close()
    return list(res)


def summarise(res: list[dict], votes: dict[str, int]) -> dict:
    lat = np.array([x for r in res for x in r["latencies"]], dtype=float)
    sent = sum(r["sent"] for r in res)
    answered = sum(r["answered"] for r in res)
    ignored = sum(r["ignored"] for r in res)
    in_db = sum(votes.get(r["pid"], 0) for r in res)
    return {"participants": len(res), "inputs": sent, "answers": answered, "ignored_visibly": ignored,
            "lost": sent - answered - ignored, "votes_in_db": in_db, "n_latencies": int(lat.size),
            "p50_ms": round(float(np.percentile(lat, 50)), 1) if lat.size else None,
            "p95_ms": round(float(np.percentile(lat, 95)), 1) if lat.size else None,
            "max_ms": round(float(lat.max()), 1) if lat.size else None}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=32)
    ap.add_argument("--participants", type=int, default=6)
    ap.add_argument("--think-ms", type=float, default=600.0)
    ap.add_argument("--out", default=str(Path(__file__).with_name("RESULTS_study.md")))
    args = ap.parse_args(argv)

    from lossarena.study_app.core.build import build_study
    from lossarena.study_app.core.session import StudyRuntime
    from lossarena.study_app.core.stimuli import make_synthetic_stimuli
    from lossarena.study_app.serve import start_server, stop_server

    tmp = Path(tempfile.mkdtemp(prefix="la-latency-"))
    make_synthetic_stimuli(tmp / "stim", contents=3, target_bpps=(0.4, 1.0), max_side=768)
    cfg = build_study(tmp / "stim", tmp / "study", crop=(640, 480), sessions=1, sampler="full",
                      trials_per_participant=args.pairs, traps_per_participant=2, n_practice=0, progress=False)
    port = _port()
    log = open(tmp / "server.log", "w")
    proc = start_server(cfg.dir, None, port=port, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if urllib.request.urlopen(url + "/_stcore/health", timeout=2).status == 200:
                    break
            except OSError:
                time.sleep(0.3)
        load0 = os.getloadavg()[0]
        t0 = time.time()
        one = asyncio.run(run_phase(url, 1, args.pairs, args.think_ms, "ONE"))
        t1 = time.time()
        many = asyncio.run(run_phase(url, args.participants, args.pairs, args.think_ms, "MANY"))
        t2 = time.time()
        load1 = os.getloadavg()[0]
    finally:
        stop_server(proc)
        log.close()
    rt = StudyRuntime.open(cfg.dir)
    votes = {p["participant"]: len(rt.store.participant_votes(cfg.study_id, p["participant"]))
             for p in rt.store.list_participants(cfg.study_id)}
    rt.store.dispose()
    s1, s6 = summarise(one, votes), summarise(many, votes)
    print(json.dumps({"one": s1, "many": s6}, indent=1))
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"\n### Browser latency, click/key -> next pair painted ({now})\n",
        f"`benchmarks/study_browser_latency.py --pairs {args.pairs} --participants {args.participants} "
        f"--think-ms {args.think_ms:g}`; headless Debian Chromium {_chromium_version()}, Streamlit "
        f"{_streamlit_version()}, server and all browsers on this machine ({os.cpu_count()} cores, load average "
        f"{load0:.1f} before, {load1:.1f} after). Wall: {t1 - t0:.0f} s (1 participant), {t2 - t1:.0f} s "
        f"({args.participants} at once).\n",
        "| participants at once | inputs | answers recorded | ignored visibly (pair loading) | lost | votes in DB | "
        "latency p50 | p95 | max |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in (s1, s6):
        lines.append(f"| {s['participants']} | {s['inputs']} | {s['answers']} | {s['ignored_visibly']} | {s['lost']} | "
                     f"{s['votes_in_db']} | {s['p50_ms']} ms | {s['p95_ms']} ms | {s['max_ms']} ms |")
    with open(args.out, "a") as f:
        f.write("\n".join(lines) + "\n")
    print(f"appended to {args.out}")
    ok = s1["lost"] == 0 and s6["lost"] == 0 and s1["answers"] == s1["votes_in_db"] and s6["answers"] == s6["votes_in_db"]
    return 0 if ok else 1


def _chromium_version() -> str:
    try:
        return subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True, timeout=30).stdout.split()[1]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "?"


def _streamlit_version() -> str:
    import streamlit

    return streamlit.__version__


if __name__ == "__main__":
    sys.exit(main())
