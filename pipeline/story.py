"""The demo's index page: the answer first (which loss won at each bitrate, its significance, the known
truth beside it), then how far each check can be believed, then the evidence stage by stage."""

from __future__ import annotations

import math
import time
from pathlib import Path

from lossarena.html import escape, note, write_page

from .evidence import fmt_p


def _answer_section(ctx) -> list[str]:
    a = ctx.info.get("analysis") or {}
    rows = a.get("answer") or []
    truth_metric = (ctx.info.get("study") or {}).get("truth_metric", "?")
    out = ["<h2>The answer</h2>"]
    if not rows:
        return out + [note("The analysis stage has not run: no answer yet.")]
    lines = []
    for r in rows:
        sig = "significant" if r["significant"] else "not significant"
        agree = ("matches the truth" if r["agrees"] else
                 f"the truth says <b>{escape(r['true_winner'])}</b>")
        lines.append(f"<li>At <b>{escape(r['group'])} bpp</b>: <b>{escape(r['winner'])}</b> won "
                     f"({r['winner_jod']:+.2f} JOD vs {escape(r['runner_up'])} {r['runner_up_jod']:+.2f}; "
                     f"{r['direct_votes']} direct votes, {fmt_p(r['p_value'])}, {sig}) — {agree}.</li>")
    n_agree = sum(r["agrees"] for r in rows)
    out.append(f"<div class='answer'><p>Which loss should the codec be trained with, judged by the (simulated) "
               f"people? Their hidden preference was <b>{escape(truth_metric)}</b> of what they saw.</p><ul>"
               + "".join(lines) + f"</ul><p>The study recovered the true winner at {n_agree} of {len(rows)} "
               "bitrates.</p></div>")
    return out


def _trust_section(ctx) -> list[str]:
    a, z, b, p = (ctx.info.get(k) or {} for k in ("analysis", "zoo", "benchmark", "plan"))
    items = []
    if z:
        items.append(f"<li><b>Codecs</b>: the MSE base reaches {z['base_psnr']:.2f} dB at {z['base_bpp']:.3f} bpp on "
                     f"the held-out images (goal ≥ 27 dB at ≤ 0.4 bpp: {'met' if z['goal_met'] else '<b>not met</b>'})."
                     "</li>")
    if a:
        r, mae = a.get("truth_r"), a.get("truth_mae")
        if r is not None and not (isinstance(r, float) and math.isnan(r)):
            items.append(f"<li><b>Scale</b>: recovered JOD vs truth r = {r:.3f}, MAE = {mae:.2f} JOD; "
                         f"{a['ci_coverage']:.0%} of true values inside the 95% CIs.</li>")
        if a.get("n_careless"):
            items.append(f"<li><b>Careless observers</b>: {a['catch_rate']:.0%} of {a['n_careless']} caught by the "
                         f"training gate, QC and outlier screen; {a['false_alarms']} honest observers flagged.</li>")
    if b:
        tm = (ctx.info.get("study") or {}).get("truth_metric", "?")
        items.append(f"<li><b>Metric benchmark</b>: the ground-truth metric {escape(tm)} ranks "
                     f"{b.get('truth_rank') or 'n/a'} of the metrics (top: {escape(b.get('top_metric', ''))}).</li>")
    if p:
        req = p["required"]
        beyond = f"more than {p['max_participants']}" if p.get("max_participants") else "more than the searched range of"
        items.append(f"<li><b>Participants</b>: this design needs {req.get('adjacent') or beyond} participants to "
                     f"separate adjacent conditions (80% power) and {req.get('ci') or beyond} for 95% CIs narrower "
                     f"than {p.get('target_ci', '?')} JOD; the demo ran {p['ran']}.</li>")
    if not items:
        return []
    return ["<h2>How far to trust it</h2>", "<ul>" + "".join(items) + "</ul>"]


def _time_note(ctx) -> str:
    """The stages' own times summed (a re-run of some stages keeps the others' times), and this run's."""
    stage_s = sum(float(v) for k, v in ctx.timings.items() if k != "total" and v is not None)
    if not stage_s:
        return ""
    this = ctx.timings.get("total")
    return (f"; stages {stage_s:.0f} s" + (f" (this run {this:.0f} s)" if this is not None and this < stage_s - 1 else ""))


def write_index(ctx, stages) -> Path:
    """Write ``ctx.out/index.html`` (the shared page template) and return its path."""
    imgs = ctx.info.get("images", {})
    parts = [note(f"profile: {escape(ctx.profile.get('name'))}; evaluation images: {escape(imgs.get('source', '?'))}; "
                  f"training images: {escape(imgs.get('train_source', '?'))}; seed {ctx.seed}; generated "
                  f"{time.strftime('%Y-%m-%d %H:%M:%S')}"
                  + _time_note(ctx))]
    parts += _answer_section(ctx)
    parts += _trust_section(ctx)
    parts.append("<h2>The evidence, stage by stage</h2>")
    for n, st in enumerate([s for s in stages if s.name != "images"], 1):
        info = ctx.info.get(st.name)
        parts.append(f"<h2>{n}. {escape(st.title)}</h2>")
        if info is None:
            parts.append(note("not run"))
            continue
        t = ctx.timings.get(st.name)
        if t is not None:
            parts.append(f"<p style='color:#57606a;font-size:.85em'>{t:.1f} s</p>")
        parts.append(info.get("html", ""))
        for key in ("csv", "report"):
            if info.get(key):
                parts.append(f"<p><a href='{escape(info[key])}'>{escape(info[key])}</a></p>")
        for s in info.get("skipped", []):
            parts.append(note(f"skipped {escape(s)}: ImageNet backbone missing"))
    return write_page(ctx.out / "index.html", "lossarena demo: which loss should a codec be trained with?", parts)
