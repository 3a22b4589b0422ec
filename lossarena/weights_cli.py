"""``lossarena weights status|download``: the ImageNet backbones the deep metrics need.

Exit codes (the project's three): 0 success; 2 bad input (an unknown backbone name, bad arguments);
3 missing model weights (a download failed, so the backbone is still missing). ``status`` always
exits 0 and lists what is missing. Errors go to stderr, one line each.
"""

from __future__ import annotations

import argparse
import sys

from .errors import EXIT_BAD_INPUT, EXIT_MISSING_WEIGHTS, EXIT_OK
from .metrics import weights as W


def _status() -> int:
    print(f"cache: {W.checkpoint_dir()}")
    for name in W.BACKBONES:
        st = W.backbone_status(name)
        state = {"bad hash": "BAD HASH", "stand-in": "STAND-IN"}.get(st.state, st.state)
        print(f"{name:14s} {state:9s} {st.backbone.filename:30s} used by {st.backbone.used_by}")
    if not all(W.backbone_status(n).ok for n in W.BACKBONES):
        print("missing backbones: `lossarena weights download` (needs internet), or copy the files above "
              "into the cache folder")
    W.print_standin_banner()
    return EXIT_OK


def _download(names: list[str]) -> int:
    bad = [n for n in names if n not in W.BACKBONES]
    if bad:
        print(f"error: expected a backbone among {', '.join(W.BACKBONES)}, got {bad[0]!r}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        for p in W.download(names or None):
            print(f"ok {p}")
    except (OSError, RuntimeError) as e:  # no network (URLError is an OSError), hash mismatch (RuntimeError)
        print(f"error: download failed ({e}); copy the files by hand, see `lossarena weights status`",
              file=sys.stderr)
        return EXIT_MISSING_WEIGHTS
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Run ``lossarena weights``; returns the exit code (0, 2 or 3; see the module docstring)."""
    ap = argparse.ArgumentParser(prog="lossarena weights", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("status", help="list backbones, where they are expected and whether they verify")
    d = sub.add_parser("download", help="fetch missing backbones into $TORCH_HOME/hub/checkpoints (needs internet)")
    d.add_argument("names", nargs="*", help=f"backbones among {', '.join(W.BACKBONES)} (default: all)")
    try:
        args = ap.parse_args(argv)
    except SystemExit as e:  # argparse: usage errors are bad input (2), --help is 0
        return EXIT_OK if not e.code else EXIT_BAD_INPUT
    if args.cmd == "status":
        return _status()
    return _download(args.names)


if __name__ == "__main__":
    sys.exit(main())
