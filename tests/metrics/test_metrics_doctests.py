"""The Examples in the metric package's docstrings run (numpydoc "a short example that runs")."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import lossarena.metrics as M

MODULES = ["lossarena.metrics", "lossarena.log"] + [
    f"lossarena.metrics.{m.name}" for m in pkgutil.iter_modules(M.__path__) if m.name != "cli"
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name, monkeypatch):
    monkeypatch.setenv("LOSSARENA_DEBUG", "1")  # examples that show value errors see them every time
    mod = importlib.import_module(name)
    res = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert res.failed == 0, f"{res.failed} of {res.attempted} examples failed in {name}"


def test_public_api_has_numpydoc_sections():
    """Every public function and class exported by lossarena.metrics documents its parameters,
    what it returns and shows an example."""
    import inspect

    missing = []
    for n in M.__all__:
        obj = getattr(M, n)
        if not (inspect.isfunction(obj) or inspect.isclass(obj)):
            continue
        doc = inspect.getdoc(obj) or ""
        want = ["Examples"] + (["Returns"] if inspect.isfunction(obj) else [])
        if inspect.signature(obj).parameters:
            want.append("Parameters")
        missing += [f"{n}: {s}" for s in want if s not in doc]
    assert not missing, missing
