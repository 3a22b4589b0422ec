"""The ``lossarena`` command: one entry point, one sub-tool per stage.

Every tool is a module with ``main(argv) -> int``; this file only dispatches (lazily, so
``lossarena --help`` does not import torch or CompressAI). Errors that escape a tool become the
exit codes in :mod:`lossarena.errors` with a one-line message, never a traceback.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

from lossarena.errors import LossarenaError, did_you_mean

# name -> (module with main(argv), one-line help)
TOOLS: dict[str, tuple[str, str]] = {
    "metrics": ("lossarena.metrics.cli", "score image pairs with the metric registry; list metrics"),
    "weights": ("lossarena.weights_cli", "status/download of the ImageNet backbones for LPIPS, DISTS, DPIS"),
    "codecs": ("lossarena.codecs.cli", "train, fine-tune, compress, evaluate, rate-match the codec zoo; RD, BD-rate"),
    "roi": ("lossarena.codecs.roi.cli", "the saliency-guided variable-rate ROI codec"),
    "study": ("lossarena.study_app.cli", "build, serve, simulate and export a pairwise-comparison study"),
    "analysis": ("lossarena.analysis.cli", "outliers, preference matrices, JOD / Bradley-Terry scaling, reports"),
    "benchmark": ("lossarena.benchmark.cli", "2AFC accuracy of metrics against human judgments; DPIS, ROI-MLP"),
    "demo": ("lossarena.pipeline.demo", "the whole pipeline end to end into demo-output/index.html"),
}


def _usage() -> str:
    lines = ["usage: lossarena [-v | -q] <tool> [args...]", "", "tools:"]
    lines += [f"  {name:10s} {help_}" for name, (_, help_) in TOOLS.items()]
    lines += ["", "-v / -vv: more log output (INFO / DEBUG); -q: warnings and errors only.",
              "`lossarena <tool> --help` for each tool's commands and options."]
    return "\n".join(lines)


def configure_logging(verbosity: int) -> None:
    """Set up ``logging`` for a CLI run: -1 quiet (WARNING), 0 default (INFO for lossarena), 1+ DEBUG.

    Delegates to :func:`lossarena.log.configure` (the core's one logging set-up).
    """
    from lossarena.log import configure

    configure(verbosity)


def register_learned_metrics() -> None:
    """Let the benchmark layer register the project's own learned metrics (DPIS, ...) explicitly.

    Only the top layer may import the benchmark layer; done lazily, per tool run, so that
    ``lossarena --help`` stays fast.
    """
    from lossarena.benchmark import register_learned_metrics as register

    register()


def run_tool(name: str, argv: list[str]) -> int:
    register_learned_metrics()
    module = importlib.import_module(TOOLS[name][0])
    try:
        return int(module.main(argv) or 0)
    except LossarenaError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    verbosity = 0
    while argv and argv[0] in ("-v", "-vv", "-q", "--verbose", "--quiet"):
        flag = argv.pop(0)
        verbosity = -1 if flag in ("-q", "--quiet") else verbosity + (2 if flag == "-vv" else 1)
    configure_logging(verbosity)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    if argv[0] == "--version":
        from importlib.metadata import version

        print(f"lossarena {version('lossarena')}")
        return 0
    name = argv[0]
    if name not in TOOLS:
        print(f"error: unknown tool '{name}'{did_you_mean(name, TOOLS)}\n\n{_usage()}", file=sys.stderr)
        return 2
    return run_tool(name, argv[1:])


if __name__ == "__main__":
    sys.exit(main())
