"""``lossarena weights status|download``: the ImageNet backbones the deep metrics need."""

from __future__ import annotations

import argparse

from .metrics import weights as W


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="lossarena weights", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("status", help="list backbones, where they are expected and whether they verify")
    d = sub.add_parser("download", help="fetch missing backbones into $TORCH_HOME/hub/checkpoints (needs internet)")
    d.add_argument("names", nargs="*", help=f"backbones among {', '.join(W.BACKBONES)} (default: all)")
    args = ap.parse_args(argv)
    if args.cmd == "download":
        bad = [n for n in args.names if n not in W.BACKBONES]
        if bad:
            print(f"error: unknown backbone {bad[0]!r}; known: {', '.join(W.BACKBONES)}")
            return 2
    if args.cmd == "status":
        print(f"cache: {W.checkpoint_dir()}")
        for name in W.BACKBONES:
            st = W.backbone_status(name)
            state = {"bad hash": "BAD HASH", "stand-in": "STAND-IN"}.get(st.state, st.state)
            print(f"{name:14s} {state:9s} {st.backbone.filename:30s} used by {st.backbone.used_by}")
        if not all(W.backbone_status(n).ok for n in W.BACKBONES):
            print("missing backbones: `lossarena weights download` (needs internet), or copy the files above "
                  "into the cache folder")
        W.print_standin_banner()
        return 0
    try:
        for p in W.download(args.names or None):
            print(f"ok {p}")
    except Exception as e:  # network errors come in many types
        print(f"error: download failed ({e}); copy the files by hand, see `lossarena weights status`")
        return 1
    return 0
