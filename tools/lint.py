"""Structural lint: the import-layer contract (import-linter) and the type checker (mypy).

The repository maps its top-level folders into one package (``codecs/`` is ``lossarena.codecs``,
see ``[tool.setuptools] package-dir`` in pyproject.toml). import-linter and mypy find a package by
walking the folder of ``lossarena/`` on disk, so neither sees the mapped folders. This script
builds the package as it is installed — a throw-away tree of symbolic links that follows the
package-dir mapping — and runs both tools on it, with every import counted, also the ones inside
functions. Usage::

    python tools/lint.py            # both
    python tools/lint.py imports    # only the layer contract (pyproject's [tool.importlinter])
    python tools/lint.py types      # only mypy on the packages in TYPED
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parents[1]
# Packages the type checker must pass on (the minimum; extend as packages are annotated).
TYPED = ["lossarena.metrics", "lossarena.analysis"]


def build_tree(dest: Path) -> None:
    """Mirror the installed package layout under ``dest`` with symbolic links."""
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())
    mapping: dict[str, str] = cfg["tool"]["setuptools"]["package-dir"]
    # Parents before children, so a mapped sub-package lands inside its parent's mirror.
    for pkg, folder in sorted(mapping.items(), key=lambda kv: kv[0].count(".")):
        target = dest.joinpath(*pkg.split("."))
        target.parent.mkdir(parents=True, exist_ok=True)
        if pkg.count(".") == 0:
            target.mkdir(exist_ok=True)
            for entry in (ROOT / folder).iterdir():
                if entry.name != "__pycache__":
                    (target / entry.name).symlink_to(entry)
        else:
            if target.is_symlink():
                target.unlink()
            target.symlink_to(ROOT / folder, target_is_directory=True)


def run(tool: str, tree: Path) -> int:
    env = dict(os.environ, PYTHONPATH=str(tree), MYPYPATH=str(tree))
    bindir = Path(sys.executable).parent
    if tool == "imports":
        cmd = [str(bindir / "lint-imports"), str(ROOT / "pyproject.toml"), "--no-cache"]
    else:
        cmd = [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml")]
        for pkg in TYPED:
            cmd += ["-p", pkg]
    print(f"$ {' '.join(cmd[-6:] if tool == 'types' else cmd[1:])}", flush=True)
    return subprocess.call(cmd, cwd=tree, env=env)


def main(argv: list[str]) -> int:
    tools = argv or ["imports", "types"]
    with tempfile.TemporaryDirectory(prefix="lossarena-lint-") as tmp:
        tree = Path(tmp)
        build_tree(tree)
        return max(run(t, tree) for t in tools)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
