"""The distribution installs and imports correctly, both editable and as a built wheel.

The repository's root folders (``codecs/``, ``analysis/``, ...) import as ``lossarena.codecs``,
``lossarena.analysis``, ... through ``[tool.setuptools] package-dir`` in pyproject.toml; a top-level
``codecs`` package would shadow the standard library, so these tests also check that ``import codecs``
is still the stdlib. Everything is derived from pyproject.toml, so a package added there (or a folder
with ``__init__.py`` forgotten there, or a data file that no package-data pattern ships) is checked
without editing this file.
"""

from __future__ import annotations

import fnmatch
import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path, PurePosixPath

import pytest

from lossarena.paths import REPO_ROOT

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]
PACKAGES: list[str] = SETUPTOOLS["packages"]
PACKAGE_DIR: dict[str, str] = SETUPTOOLS.get("package-dir", {})
PACKAGE_DATA: dict[str, list[str]] = SETUPTOOLS.get("package-data", {})


def source_dir(pkg: str) -> Path:
    """Where package ``pkg`` lives in the repository, following ``package-dir``."""
    parts = pkg.split(".")
    for i in range(len(parts), 0, -1):
        prefix = ".".join(parts[:i])
        if prefix in PACKAGE_DIR:
            return REPO_ROOT / PACKAGE_DIR[prefix] / Path(*parts[i:])
    return REPO_ROOT / Path(*parts)


def repo_files() -> list[Path]:
    """Files a checkout holds (tracked, or new and not ignored); every file if git is unavailable."""
    try:
        out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
                             cwd=REPO_ROOT, capture_output=True, check=True, timeout=60).stdout
        files = [REPO_ROOT / p for p in out.decode().split("\0") if p]
    except (OSError, subprocess.SubprocessError):
        files = [p for p in REPO_ROOT.rglob("*") if ".venv" not in p.parts and ".git" not in p.parts]
    return [p for p in files if p.is_file() and "__pycache__" not in p.parts]


def _glob_match(rel: str, pattern: str) -> bool:
    """setuptools' package-data glob: relative to the package folder, ``*`` does not cross ``/``."""
    a, b = PurePosixPath(rel).parts, PurePosixPath(pattern).parts
    return len(a) == len(b) and all(fnmatch.fnmatchcase(x, y) for x, y in zip(a, b))


def expected_contents() -> tuple[dict[str, str], list[str]]:
    """(installed path -> source path for every file the wheel must hold, files no rule ships)."""
    dirs = {pkg: source_dir(pkg) for pkg in PACKAGES}
    expected, unshipped = {}, []
    for f in repo_files():
        owners = [(pkg, d) for pkg, d in dirs.items() if d in f.parents]
        if not owners:
            continue
        pkg, d = max(owners, key=lambda o: len(o[1].parts))  # the innermost listed package
        rel = f.relative_to(d).as_posix()
        patterns = PACKAGE_DATA.get("*", []) + PACKAGE_DATA.get(pkg, [])
        if (f.suffix == ".py" and "/" not in rel) or any(_glob_match(rel, p) for p in patterns):
            expected["/".join(pkg.split(".")) + "/" + rel] = str(f)
        elif f.suffix not in (".pyc",):
            unshipped.append(str(f.relative_to(REPO_ROOT)))
    return expected, unshipped


# ----------------------------------------------------------------------------------------------------
# the layout pyproject.toml declares


def test_every_package_folder_is_listed_and_every_data_file_ships():
    for pkg in PACKAGES:
        assert (source_dir(pkg) / "__init__.py").is_file(), f"{pkg}: no {source_dir(pkg)}/__init__.py"
    roots = {source_dir(pkg) for pkg in PACKAGES if pkg.count(".") <= 1}
    listed = {source_dir(pkg) for pkg in PACKAGES}
    for root in roots:
        for init in root.rglob("__init__.py"):
            if "__pycache__" in init.parts:
                continue
            assert init.parent in listed, (
                f"{init.parent.relative_to(REPO_ROOT)} has __init__.py but is not in pyproject's "
                "[tool.setuptools] packages: it would be missing from a non-editable install")
    _, unshipped = expected_contents()
    assert not unshipped, (
        f"files inside packages that no package-data pattern ships (missing from `pip install .`): "
        f"{unshipped[:10]}; patterns: {PACKAGE_DATA}")


# ----------------------------------------------------------------------------------------------------
# (a) the editable install in .venv


def test_editable_install_resolves_to_the_repository():
    site = sysconfig.get_paths()["purelib"]  # not a stray lossarena.egg-info in the checkout
    dists = list(importlib.metadata.distributions(name="lossarena", path=[site]))
    if not dists:
        pytest.skip(f"lossarena is not installed in {site}")
    direct = dists[0].read_text("direct_url.json")
    info = json.loads(direct) if direct else {}
    if not info.get("dir_info", {}).get("editable"):
        pytest.skip("lossarena is not installed editable in this environment (`pip install -e .`)")
    assert Path(info["url"].removeprefix("file://")).resolve() == REPO_ROOT.resolve()
    for pkg in PACKAGES:
        spec = importlib.util.find_spec(pkg)
        assert spec is not None and spec.origin, pkg
        assert Path(spec.origin).resolve() == (source_dir(pkg) / "__init__.py").resolve(), pkg
    import codecs

    import lossarena.codecs

    stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()
    assert Path(codecs.__file__).resolve().parent == stdlib
    assert codecs.lookup("utf-8").name == "utf-8"
    assert Path(lossarena.codecs.__file__).resolve() == (REPO_ROOT / "codecs" / "__init__.py").resolve()


# ----------------------------------------------------------------------------------------------------
# (b) a non-editable build


_PROBE = r"""
import importlib, importlib.resources, json, sys, sysconfig
target = sys.argv[1]
pkgs = json.loads(sys.argv[2])
files = {p: importlib.import_module(p).__file__ for p in pkgs}
import codecs
from lossarena.metrics import metric_names
data = {p: sorted(f.name for f in importlib.resources.files(p).iterdir() if f.is_file()) for p in pkgs}
print(json.dumps({"files": files, "codecs": codecs.__file__, "stdlib": sysconfig.get_paths()["stdlib"],
                  "metrics": metric_names(), "data": data}))
"""


@pytest.mark.slow
def test_wheel_build_installs_and_imports(tmp_path):
    # build from a copy of the checkout, so nothing (build/, *.egg-info) is written into the repo
    src = tmp_path / "src"
    for f in repo_files():
        rel = f.relative_to(REPO_ROOT)
        if rel.parts[0] in ("tests", "docs", "benchmarks", ".ci"):
            continue
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, src / rel)
    wheels = tmp_path / "wheels"
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                        "-w", str(wheels), str(src)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    (whl,) = wheels.glob("lossarena-*.whl")
    with zipfile.ZipFile(whl) as z:
        names = set(z.namelist())
        expected, _ = expected_contents()
        missing = sorted(set(expected) - names)
        assert not missing, f"wheel lacks {missing[:10]}"
        assert not any(n.split("/")[0] in ("codecs", "analysis", "benchmark", "study_app", "data", "tests")
                       for n in names), "a repo folder was installed as a top-level package"
        target = tmp_path / "target"
        z.extractall(target)  # a pure-Python wheel installs by unpacking (what pip install --target does)
    entry = [n for n in names if n.endswith("entry_points.txt")]
    assert entry and "lossarena = lossarena.pipeline.cli:main" in (target / entry[0]).read_text()

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(target)
    r = subprocess.run([sys.executable, "-c", _PROBE, str(target), json.dumps(PACKAGES)], cwd=tmp_path,
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    for pkg, f in out["files"].items():
        installed = target / Path(*pkg.split(".")) / "__init__.py"
        assert Path(f).resolve() == installed.resolve(), f"{pkg} imported from {f}, not the built copy"
    assert Path(out["codecs"]).resolve().parent == Path(out["stdlib"]).resolve()
    assert {"mse", "psnr", "lpips-alex", "dists"} <= set(out["metrics"])
    for path in expected:  # every file beside the modules is reachable through importlib.resources
        pkg_path, name = path.rsplit("/", 1)
        pkg = pkg_path.replace("/", ".")
        if pkg in out["data"]:
            assert name in out["data"][pkg], (pkg, name)
