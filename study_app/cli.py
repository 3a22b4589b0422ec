"""``lossarena study``: build, serve, simulate, export, verify-code, synth-stimuli.

Exit status: 0 ok, 2 bad input (one line naming the file/field), and for ``verify-code``:
0 valid and clean, 1 invalid (or not finished with ``--check-finished``), 4 valid but flagged by
quality control (the reasons are printed).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from lossarena.errors import InputError

from .plan import add_plan_parser, add_simulate_truth_args, run_plan, simulate_kwargs


def _crop(s: str) -> tuple[int, int]:
    m = re.fullmatch(r"(\d+)[xX×](\d+)", s.strip())
    if not m:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, e.g. 800x640, got {s!r}")
    return int(m.group(1)), int(m.group(2))


def _minutes(s: str) -> tuple[int, int]:
    m = re.fullmatch(r"(\d+)(?:-(\d+))?", s.strip())
    if not m:
        raise argparse.ArgumentTypeError(f"expected MINUTES or MIN-MAX, e.g. 10-15, got {s!r}")
    lo = int(m.group(1))
    hi = int(m.group(2) or lo)
    if hi < lo:
        raise argparse.ArgumentTypeError(f"expected MIN-MAX with MIN <= MAX, got {s!r}")
    return lo, hi


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="lossarena study", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)

    b = sub.add_parser("build", help="build a study folder from a stimuli folder (manifest.csv)")
    b.add_argument("stimuli")
    b.add_argument("--out", required=True, help="study folder to create")
    b.add_argument("--crop", type=_crop, default=None,
                   help="crop size WxH (default 800x640 for pairs, 512x512 for triplets)")
    b.add_argument("--sessions", type=int, default=3)
    b.add_argument("--sampler", default=None,
                   help="pairwise: adjacent (default), full, active; triplet: aic3 (default)")
    b.add_argument("--design", default="pairwise",
                   help="pairwise (default) or triplet (JPEG AIC-3: reference in the middle, 'which differs more?')")
    t = b.add_argument_group("triplet design (--design triplet; docs/study.md 'Triplet design')")
    t.add_argument("--boost", default="zoom,flicker,amplify",
                   help="boosts of the boosted triplets: any of zoom,flicker,amplify, or none (default all three)")
    t.add_argument("--plain-fraction", type=float, default=0.5, help="share of plain (unboosted) triplets (0.5)")
    t.add_argument("--trap-rate", type=float, default=0.07, help="share of trap triplets (0.07, as AIC-3 BTC)")
    t.add_argument("--bias-rate", type=float, default=0.05, help="share of bias triplets (0.05, as AIC-3 PTC)")
    t.add_argument("--cross-fraction", type=float, default=0.17,
                   help="share of cross-codec among the normal triplets (0.17, as AIC-3 BTC)")
    t.add_argument("--same-max-step", type=int, default=0, help="same-codec pairs at most N levels apart (0 = all)")
    t.add_argument("--cross-max-step", type=int, default=1, help="cross-codec pairs at most N levels apart (1)")
    t.add_argument("--zoom", type=int, default=2, help="integer zoom factor of the zoom boost (2)")
    t.add_argument("--flicker-period-ms", type=int, default=100,
                   help="flicker: each image shown this long before the other (100 ms = 5 cycles/s)")
    t.add_argument("--amplify-gain", type=float, default=2.0, help="artefact amplification gain g (2)")
    t.add_argument("--amplify-clamp", default="reduce",
                   help="reduce (default: the gain is lowered per pixel so no channel clamps, Men 2021 / AIC-3) "
                        "or clip")
    t.add_argument("--zoom-resample", default="nearest",
                   help="nearest (default: the browser enlarges x zoom, pixel-exact) or lanczos (AIC-3: the "
                        "region enlarged by Lanczos at build time, drawn 1:1)")
    t.add_argument("--timing", default="free",
                   help="free (default) or aic3: boosted triplets shown 8 s then blanked 3 s, plain ones need a "
                        "toggle first (at most 2 per s), 30 s window; values in study.yaml")
    b.add_argument("--trials", type=int, default=40, help="sampler pairs per participant (0 = until exhausted)")
    b.add_argument("--traps", type=int, default=2, help="trap pairs per participant (0 allowed)")
    b.add_argument("--practice", type=int, default=3, help="training pairs (0 allowed: briefed lab observers)")
    b.add_argument("--tie", action="store_true", help="offer a 'not sure' answer (key N / space)")
    b.add_argument("--completion-url", default="",
                   help="where the done page sends participants, e.g. https://app.prolific.com/submissions/"
                        "complete?cc=CODE ({code} is replaced by --completion-code)")
    b.add_argument("--completion-code", default="", help="the platform's study-level completion code (Prolific)")
    b.add_argument("--scale", type=int, default=1, help="k: every image pixel covers k x k device pixels (default 1)")
    b.add_argument("--stated-minutes", type=_minutes, default=(10, 15),
                   help="the duration the consent page states, MIN-MAX (default 10-15)")
    b.add_argument("--allow-touch", action="store_true", help="do not refuse touch devices (phones, tablets)")
    b.add_argument("--include-reference", action="store_true", help="also compare against the original")
    b.add_argument("--study-id")
    b.add_argument("--allow-anonymous", action="store_true", help="generate ids for links without one")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--force", action="store_true", help="rebuild an existing study (new secrets)")

    s = sub.add_parser("serve", help="run the participant app (Streamlit)")
    s.add_argument("study")
    s.add_argument("--db", help="sqlite:///FILE (default STUDY/votes.sqlite) or postgresql://USER@HOST:PORT/DB "
                                "(no password here: set LOSSARENA_DB_PASSWORD or use --db-password-file)")
    s.add_argument("--db-password-file", help="file whose first line is the database password")
    s.add_argument("--port", type=int, default=8501)
    s.add_argument("--address", default="127.0.0.1")
    s.add_argument("--print-command", action="store_true", help="print the streamlit command and exit")

    m = sub.add_parser("simulate", help="synthetic participants through the app's core code path")
    m.add_argument("study")
    m.add_argument("--db")
    m.add_argument("--participants", type=int, required=True)
    m.add_argument("--concurrency", type=int, default=4)
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--random-fraction", type=float, default=0.1, help="share of random responders")
    m.add_argument("--think-ms", type=float, default=0.0, help="mean think time per pair (exponential)")
    m.add_argument("--ack-log", help="append 'participant,seq,status,winner' per committed vote")
    m.add_argument("--first", type=int, default=0, help="index of the first participant (split over processes)")
    m.add_argument("--latency-log", help="write every vote-commit latency (ms), one per line")
    m.add_argument("--json", action="store_true", help="print the summary as JSON")
    add_simulate_truth_args(m)
    add_plan_parser(sub)

    e = sub.add_parser("export", help="votes to the canonical CSV")
    e.add_argument("study")
    e.add_argument("--db")
    e.add_argument("--out", required=True)
    e.add_argument("--include-traps", action="store_true")
    e.add_argument("--include-flagged", action="store_true", help="keep participants flagged by quality control")
    e.add_argument("--design", default=None,
                   help="pairwise or triplet (default: the study's design; a mismatch is an error)")

    v = sub.add_parser("verify-code", help="check a participant's completion code")
    v.add_argument("study")
    v.add_argument("--worker", required=True)
    v.add_argument("--code", required=True)
    v.add_argument("--db", help="the store for --check-finished (default STUDY/votes.sqlite)")
    v.add_argument("--check-finished", action="store_true", help="also require a finished participant in the store")

    y = sub.add_parser("synth-stimuli", help="a small synthetic stimuli folder (JPEG/WebP, rate-matched)")
    y.add_argument("out")
    y.add_argument("--contents", type=int, default=3)
    y.add_argument("--bpp", type=float, nargs="+", default=[0.4, 1.0])
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _main(args)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def _main(args) -> int:
    if args.cmd == "build":
        from .core.build import build_study, duration_warning
        from .core.config import SECRETS_NAME, TripletSettings

        triplet = None
        if args.design == "triplet":
            triplet = TripletSettings(boosts=args.boost, plain_fraction=args.plain_fraction, trap_rate=args.trap_rate,
                                      bias_rate=args.bias_rate, cross_fraction=args.cross_fraction,
                                      same_max_step=args.same_max_step, cross_max_step=args.cross_max_step,
                                      zoom=args.zoom, flicker_period_ms=args.flicker_period_ms,
                                      amplify_gain=args.amplify_gain, amplify_clamp=args.amplify_clamp,
                                      zoom_resample=args.zoom_resample, timing=args.timing)
        cfg = build_study(args.stimuli, args.out, crop=args.crop, sessions=args.sessions,
                          sampler=args.sampler or "adjacent", design=args.design, triplet=triplet,
                          trials_per_participant=args.trials, traps_per_participant=args.traps,
                          n_practice=args.practice, include_reference=args.include_reference,
                          study_id=args.study_id, seed=args.seed, force=args.force,
                          allow_anonymous=args.allow_anonymous, allow_tie=args.tie,
                          completion_url=args.completion_url, completion_code=args.completion_code,
                          scale=args.scale, stated_minutes=args.stated_minutes, allow_touch=args.allow_touch)
        n_cond = sorted({len(g.conditions) for g in cfg.groups})
        if cfg.design == "triplet":
            t = cfg.triplet
            print(f"study {cfg.study_id}: triplet design, {len(cfg.groups)} contents, {'/'.join(map(str, n_cond))} "
                  f"images each (reference included), {len(cfg.sessions)} sessions, {len(cfg.practice)} practice "
                  f"triplets, sampler {cfg.sampler}; {cfg.trials_per_participant} triplets per participant: "
                  f"plain {t.plain_fraction:g}, boosted ({t.label}) {1 - t.plain_fraction:g}, traps {t.trap_rate:g}, "
                  f"bias {t.bias_rate:g}, cross-codec {t.cross_fraction:g} of the rest; zoom x{t.zoom}, flicker "
                  f"{t.flicker_period_ms} ms per image, amplification gain {t.amplify_gain:g} ({t.amplify_clamp}), "
                  f"zoom resampling {t.zoom_resample}, timing {t.timing}")
        else:
            print(f"study {cfg.study_id}: {len(cfg.groups)} groups (content x target bpp), "
                  f"{'/'.join(map(str, n_cond))} conditions each, {len(cfg.sessions)} sessions, "
                  f"{len(cfg.practice)} practice pairs, {len(cfg.traps)} trap images, sampler {cfg.sampler}")
        print(f"config: {cfg.dir / 'study.yaml'}")
        print(f"secrets: {cfg.dir / SECRETS_NAME} (owner-only, mode 0600: completion-code secret and admin secret)")
        print(f"serve:  lossarena study serve {cfg.dir}   (participants: http://HOST:8501/?PROLIFIC_PID=ID)")
        print(f"admin:  http://HOST:8501/admin  -- log in with the admin_secret from {SECRETS_NAME} "
              "(or $LOSSARENA_ADMIN_SECRET if set when serving)")
        warn = duration_warning(cfg)
        if warn:
            print(f"warning: {warn}", file=sys.stderr)
        return 0
    if args.cmd == "serve":
        from .serve import db_url_with_password, serve, serve_command_string

        db = db_url_with_password(args.db, args.db_password_file) if args.db else None
        if args.print_command:
            print(serve_command_string(args.study, db, args.port, redact=True))
            return 0
        print(f"serving on http://{args.address}:{args.port}/?PROLIFIC_PID=ID (admin: "
              f"http://{args.address}:{args.port}/admin, admin secret in STUDY/secrets.yaml)", file=sys.stderr)
        return serve(args.study, db, args.port, args.address)
    if args.cmd == "simulate":
        from .core.config import load_config
        from .core.simulate import simulate

        if args.participants < 1 or args.concurrency < 1:
            raise InputError("--participants and --concurrency must be at least 1")
        if load_config(args.study).design == "triplet":  # observers answering from a hidden JND scale
            from .core.simulate_triplets import simulate_triplets

            tres = simulate_triplets(args.study, args.db, args.participants, args.seed)
            summ = tres.summary()
            print(json.dumps(summ) if args.json else "\n".join(f"{k:24s} {v}" for k, v in summ.items()))
            for err in tres.errors[:5]:
                print(f"error: {err}", file=sys.stderr)
            return 1 if tres.errors else 0
        res = simulate(args.study, args.db, args.participants, args.concurrency, args.seed,
                       args.random_fraction, args.think_ms / 1000.0, args.ack_log, progress=not args.json,
                       first=args.first, **simulate_kwargs(args))
        if args.latency_log:
            with open(args.latency_log, "w") as f:
                f.writelines(f"{x:.3f}\n" for x in res.latencies_ms)
        summ = res.summary()
        if args.json:
            print(json.dumps(summ))
        else:
            for k, val in summ.items():
                print(f"{k:24s} {val}")
        for err in res.errors[:5]:
            print(f"error: {err}", file=sys.stderr)
        return 1 if res.errors else 0
    if args.cmd == "plan":
        return run_plan(args)
    if args.cmd == "export":
        from .core.config import load_config
        from .core.export import export_votes

        if args.design is not None:
            if args.design not in ("pairwise", "triplet"):
                raise InputError(f"--design {args.design!r}: expected pairwise or triplet")
            have = load_config(args.study).design
            if have != args.design:
                raise InputError(f"--design {args.design}: the study {args.study} has the {have} design")
        p = export_votes(args.study, args.db, args.out, args.include_traps, args.include_flagged)
        n = sum(1 for _ in open(p)) - 1
        print(f"{n} {'triplet answers' if load_config(args.study).design == 'triplet' else 'votes'} -> {p}")
        return 0
    if args.cmd == "verify-code":
        from .core.config import load_config
        from .core.security import validate_worker_id, verify_completion_code

        cfg = load_config(args.study)
        wid = validate_worker_id(args.worker)
        ok = verify_completion_code(cfg.study_secret, cfg.study_id, wid, args.code)
        if not ok:
            print(f"INVALID: completion code for {wid} in study {cfg.study_id}")
            return 1
        from .core.qc import flag_reasons
        from .core.store import open_store

        db = args.db or cfg.default_db_url()
        reasons: list[str] = []
        if args.check_finished or args.db or Path(cfg.dir / "votes.sqlite").exists():
            st = open_store(db)
            try:
                p = st.get_participant(cfg.study_id, wid)
                if args.check_finished and (p is None or p["stage"] != "done"):
                    print(f"code matches, but participant {wid} has not finished in this store")
                    return 1
                reasons = flag_reasons(st.participant_votes(cfg.study_id, wid), cfg.qc) if p else []
            finally:
                st.dispose()
        if reasons:
            print(f"valid but FLAGGED: completion code for {wid} in study {cfg.study_id}")
            for r in reasons:
                print(f"  flag: {r}")
            return 4
        print(f"valid: completion code for {wid} in study {cfg.study_id}")
        return 0
    if args.cmd == "synth-stimuli":
        from .core.stimuli import make_synthetic_stimuli

        p = make_synthetic_stimuli(args.out, contents=args.contents, target_bpps=args.bpp)
        print(f"stimuli -> {p}")
        return 0
    return 2
