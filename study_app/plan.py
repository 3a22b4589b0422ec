"""``lossarena study plan`` and the observer options of ``lossarena study simulate``.

``plan`` estimates, by simulation (:mod:`lossarena.analysis.power`), how many participants a study
design needs: to separate adjacent conditions, to reach a target JOD confidence-interval width, or to
detect a winning-frequency difference. The design comes from a built study folder (its groups,
conditions, sampler and trials per participant) or from a spec ``IMAGESxBITRATESxCONDITIONS`` (e.g.
``6x3x9``, the seed's 9 codecs × 6 images × 3 bitrates); the truth from a pilot's votes
(``--pilot``) or an assumed spacing of adjacent conditions (``--effect`` JOD).
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from lossarena.errors import InputError

DESIGN_RE = re.compile(r"(\d+)[xX×](\d+)[xX×](\d+)")


def _shares(s: str) -> dict[str, float]:
    out = {}
    for part in filter(None, (p.strip() for p in s.split(","))):
        name, _, val = part.partition("=")
        try:
            out[name.strip()] = float(val)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected KIND=SHARE[,KIND=SHARE...], got {s!r}") from None
    return out


def _weights(s: str) -> dict[str, float]:
    out = {}
    for part in filter(None, (p.strip() for p in s.split(","))):
        name, eq, val = part.partition("=")
        try:
            out[name.strip()] = float(val) if eq else 1.0
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected METRIC[=WEIGHT][,METRIC=WEIGHT...], got {s!r}") from None
    return out


def _pair(s: str) -> tuple[float, float]:
    try:
        v = [float(x) for x in s.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH or one number, got {s!r}") from None
    if len(v) == 1:
        return v[0], v[0]
    if len(v) != 2:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH or one number, got {s!r}")
    return v[0], v[1]


def add_observer_args(p: argparse.ArgumentParser) -> None:
    """Observer-model options (shared by ``simulate`` and ``plan``)."""
    g = p.add_argument_group("observer model (analysis/observers.py)")
    g.add_argument("--careless", type=_shares, default=None,
                   help="shares of careless observers, e.g. random=0.08,always_left=0.05,too_fast=0.05")
    g.add_argument("--noise-sd", type=_pair, default=(0.7, 1.4),
                   help="per-observer noise multiplier range LOW,HIGH (1 = Thurstone Case V; default 0.7,1.4)")
    g.add_argument("--bias-sd", type=float, default=0.3, help="SD of per-observer side bias, JOD (default 0.3)")


def observer_model(args, default_careless: dict | None = None):
    from lossarena.analysis.observers import ObserverModel

    careless = args.careless if args.careless is not None else (default_careless or {})
    try:
        return ObserverModel(noise_sd=tuple(args.noise_sd), bias_sd=args.bias_sd, careless=careless)
    except ValueError as e:
        raise InputError(f"observer model: {e}") from None


def add_simulate_truth_args(p: argparse.ArgumentParser) -> None:
    """``simulate``: a hidden ground truth from metrics, answered by an observer panel."""
    p.add_argument("--truth-metric", type=_weights, default=None,
                   help="latent quality = this metric on the crops (or a mixture, e.g. ms-ssim=0.7,psnr=0.3), "
                        "mapped to JOD; enables the observer model")
    p.add_argument("--jod-spread", type=float, default=3.0, help="SD of the latent quality over the stimuli (JOD)")
    add_observer_args(p)


def simulate_kwargs(args) -> dict:
    """Extra keyword arguments for :func:`~.core.simulate.simulate` from the options above."""
    if args.truth_metric is None and args.careless is None:
        return {}
    from lossarena.metrics import get_metric

    for m in args.truth_metric or {}:
        get_metric(m)  # unknown name -> UnknownNameError (exit 2)
    if not args.jod_spread > 0:
        raise InputError(f"--jod-spread: expected > 0, got {args.jod_spread}")
    return {"observers": observer_model(args), "truth_metrics": args.truth_metric, "jod_spread": args.jod_spread}


def add_plan_parser(sub) -> None:
    p = sub.add_parser("plan", help="participants a design needs (power analysis by simulation)")
    p.add_argument("study", help="a study folder, or a design IMAGESxBITRATESxCONDITIONS such as 6x3x9")
    p.add_argument("--pilot", help="pilot votes (canonical CSV): plan from its fitted JOD scale")
    p.add_argument("--effect", type=float, default=0.5,
                   help="without --pilot: JOD between adjacent conditions (default 0.5)")
    p.add_argument("--target-ci", type=float, default=0.6,
                   help="target full width of each condition's 95%% CI, JOD (default 0.6 = ±0.3)")
    p.add_argument("--alpha", type=float, default=0.05)
    p.add_argument("--power", type=float, default=0.8)
    p.add_argument("--wf-diff", type=float, default=None,
                   help="also: detect this winning-frequency difference on one pair (e.g. 0.2 = 60/40)")
    p.add_argument("--trials", type=int, default=None, help="trials per participant (default: the study's; 40)")
    p.add_argument("--sampling", choices=("adjacent", "full"), default=None,
                   help="default: the study's sampler (active counts as adjacent); adjacent for a spec")
    p.add_argument("--participants", default="10,20,40,80,160,320,640,1280",
                   help="counts to simulate, comma-separated (the answer is refined between them)")
    p.add_argument("--replications", type=int, default=40, help="simulated studies per count (default 40)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--plot", help="write precision against participants to this PNG")
    p.add_argument("--out", help="write the table (CSV)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    add_observer_args(p)


def _design_from(args):
    from lossarena.analysis.power import Design, truth_from_effect, truth_from_pilot

    m = DESIGN_RE.fullmatch(args.study.strip())
    if m:
        n_img, n_rate, n_cond = (int(x) for x in m.groups())
        keys = [(f"img{i + 1}", f"rate{r + 1}", n_cond) for i in range(n_img) for r in range(n_rate)]
        trials = args.trials or 40
        sampling = args.sampling or "adjacent"
    else:
        from .core.config import load_config

        cfg = load_config(args.study)
        if cfg.design == "triplet":
            raise InputError(f"{args.study}: a triplet study; `study plan` models the pairwise design only "
                             "(simulate the triplet design with `study simulate` and fit it with `analysis jnd`)")
        keys = [(g.content, g.group, sorted(g.conditions)) for g in cfg.groups]
        trials = args.trials or cfg.trials_per_participant or 40
        sampling = args.sampling or ("full" if cfg.sampler == "full" else "adjacent")
    if args.pilot:
        pilot, names = truth_from_pilot(args.pilot)
        by_name = dict(zip(names, pilot))
        pooled = {}
        for g in pilot:
            for c, q in g.items():
                pooled.setdefault(c, []).append(q)
        pooled = {c: sum(v) / len(v) for c, v in pooled.items()}
        truth = []
        for content, group, conds in keys:
            g = by_name.get(f"{content}/{group}")
            if g is None:
                names_ = conds if isinstance(conds, list) else sorted(pooled)[:conds]
                g = {c: pooled[c] for c in names_ if c in pooled}
            if len(g) >= 2:
                truth.append(g)
        if not truth:
            raise InputError(f"{args.pilot}: no group of the design has two conditions with pilot scores")
    else:
        if not args.effect > 0:
            raise InputError(f"--effect: expected > 0, got {args.effect}")
        sizes = [c if isinstance(c, int) else len(c) for _, _, c in keys]
        truth = [truth_from_effect(1, n, args.effect)[0] for n in sizes]
    try:
        return Design(truth, trials_per_participant=trials, sampling=sampling,
                      group_names=[f"{c}/{g}" for c, g, _ in keys][: len(truth)])
    except ValueError as e:
        raise InputError(f"{args.study}: {e}") from None


def run_plan(args) -> int:
    from lossarena.analysis.power import plan_study, plot_plan

    try:
        grid = [int(x) for x in args.participants.split(",") if x.strip()]
    except ValueError:
        raise InputError(f"--participants: expected comma-separated integers, got {args.participants!r}") from None
    design = _design_from(args)
    model = observer_model(args, default_careless={"random": 0.08, "always_left": 0.05, "too_fast": 0.05})
    try:
        res = plan_study(design, model=model, participants=grid, replications=args.replications, alpha=args.alpha,
                         power=args.power, target_ci=args.target_ci, wf_diff=args.wf_diff, seed=args.seed)
    except ValueError as e:
        raise InputError(str(e)) from None
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        res.table.to_csv(args.out, index=False)
    if args.plot:
        plot_plan(res, args.plot)
    if args.json:
        print(json.dumps({"required": res.required, "settings": res.settings,
                          "table": res.table.to_dict(orient="records")}, default=float))
    else:
        print(res.summary())
        print(res.table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 0
