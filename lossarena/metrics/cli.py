"""``lossarena metrics score|list``.

``score REF DIST``: both image files are read with :func:`lossarena.data.images.load_image` (8/16-bit,
grey replicated to RGB, alpha composited over white). Argument order on the command line is
reference first; internally every metric is called as ``metric(distorted, reference)``.

A metric computed on a test-only stand-in backbone (see :mod:`lossarena.metrics.weights`) prints
``STAND-IN WEIGHTS: numbers are not real`` on stderr; ``list`` shows its weights as ``STAND-IN``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from typing import Any

from ..errors import InputError, LossarenaError
from .registry import MetricSpec


def _score(args: argparse.Namespace) -> int:
    import torch

    from ..data.images import load_image
    from . import get_metric, list_metrics, weights_present
    from .weights import StandInWeightsWarning

    if args.metrics:  # results are keyed by the string given (-m ssim:downsample=false)
        keyed = [(m, get_metric(m)) for m in args.metrics]  # unknown name/option -> exit 2 with a hint
    else:
        keyed = [(s.name, s) for s in list_metrics() if weights_present(s)]
    ref = load_image(args.ref)
    dist = load_image(args.dist)
    if ref.shape != dist.shape:
        raise InputError(
            f"{args.dist}: expected the size of {args.ref} ({ref.shape[-1]}x{ref.shape[-2]}), "
            f"got {dist.shape[-1]}x{dist.shape[-2]}"
        )
    device = torch.device(args.device)
    ref, dist = ref.to(device), dist.to(device)
    if not args.metrics:  # the default set leaves out what cannot score an image this small
        side = min(ref.shape[-2:])
        for _, spec in [ks for ks in keyed if ks[1].min_size > side]:
            print(f"note: {spec.name} skipped: needs images of at least {spec.min_size} px, "
                  f"got {ref.shape[-1]}x{ref.shape[-2]} (ask for it with -m to see its options)", file=sys.stderr)
        keyed = [ks for ks in keyed if ks[1].min_size <= side]
    specs = [s for _, s in keyed]
    out: dict[str, float] = {}
    for key, spec in keyed:
        try:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore", StandInWeightsWarning)  # the banner below says it once
                v = spec.function(dist, ref)
        except ValueError as e:  # e.g. image smaller than the metric's minimum size
            raise InputError(f"{args.dist}: {e}") from None
        out[key] = float(v.reshape(-1)[0])
    from .weights import print_standin_banner, standin_in_use

    used = sorted({b for spec in specs for b in spec.needs_weights})
    if used:
        print_standin_banner(used)
    if args.json:
        print(json.dumps({k: (v if math.isfinite(v) else None) for k, v in out.items()}))
    else:
        fake = set(standin_in_use(used)) if used else set()
        for key, spec in keyed:
            arrow = "lower is better" if spec.lower_better else "higher is better"
            tag = "   [STAND-IN WEIGHTS: not a real value]" if fake & set(spec.needs_weights) else ""
            print(f"{key:14s} {out[key]:.6f}   ({arrow}){tag}")
    return 0


def _list(args: argparse.Namespace) -> int:
    from . import list_metrics
    from .weights import backbone_status, print_standin_banner

    def weights_state(s: MetricSpec) -> str:
        if not s.needs_weights:
            return "none needed"
        states = [backbone_status(b) for b in s.needs_weights]
        if not all(st.ok for st in states):
            return "missing"
        return "STAND-IN" if any(st.standin for st in states) else "present"

    rows: list[dict[str, Any]] = []
    for s in list_metrics(plugins=True):
        rows.append({
            "name": s.name,
            "direction": "lower" if s.lower_better else "higher",
            "differentiable": s.differentiable,
            "weights": weights_state(s),
            "needs": ",".join(s.needs_weights),
            "options": [o.describe() for o in s.options],
        })
    print_standin_banner()
    if args.json:
        print(json.dumps(rows))
        return 0
    print(f"{'name':14s} {'better':7s} {'differentiable':14s} weights")
    for r in rows:
        w = r["weights"] + (f" ({r['needs']})" if r["needs"] else "")
        print(f"{r['name']:14s} {r['direction']:7s} {str(r['differentiable']).lower():14s} {w}")
        if args.options:
            for o in r["options"]:
                print(f"    {r['name']}:{o}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="lossarena metrics", description="full-reference image-quality metrics")
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("score", help="score a distorted image against its reference")
    s.add_argument("ref", help="reference image (PNG, BMP, JPEG; 8/16-bit; grey, RGB, RGBA)")
    s.add_argument("dist", help="distorted image, same size")
    s.add_argument("-m", "--metric", dest="metrics", action="append", metavar="NAME[:key=value,...]",
                   help="metric with optional options, e.g. ssim:downsample=false (repeatable; results are "
                        "keyed by the string given); default: every metric whose weights are present")
    s.add_argument("--json", action="store_true",
                   help='print one JSON object {"<metric as given>": <float>, ...}')
    s.add_argument("--device", default="cpu")
    s.set_defaults(func=_score)
    li = sub.add_parser("list", help="name, direction, differentiable, weights present")
    li.add_argument("--json", action="store_true")
    li.add_argument("--options", action="store_true", help="also list each metric's NAME:key=value options")
    li.set_defaults(func=_list)
    try:
        args = ap.parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    try:
        return int(args.func(args))
    except LossarenaError as e:  # bad input (2), missing weights (3): one line, no traceback
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code


if __name__ == "__main__":
    sys.exit(main())
