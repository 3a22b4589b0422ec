"""The metric registry: explicit registration, plugins loaded only on a miss, did-you-mean errors."""

from __future__ import annotations

import importlib.metadata
import logging

import pytest
import torch

from lossarena.errors import UnknownNameError
from lossarena.metrics import (
    FunctionalMetric,
    MetricSpec,
    get_metric,
    list_metrics,
    metric_names,
    register_metric,
    unregister_metric,
)
from lossarena.metrics import registry as R


def _l1(x, y):
    return (x - y).abs().flatten(1).mean(1)


def _spec(name="l1-test", **kw):
    return MetricSpec(name=name, lower_better=True, differentiable=True, citation="mean absolute error",
                      function=_l1, module=lambda reduction="none": FunctionalMetric(_l1, reduction), **kw)


class _EP:
    def __init__(self, name, load):
        self.name, self.value, self._load = name, f"fake:{name}", load

    def load(self):
        return self._load()


@pytest.fixture
def fake_plugins(monkeypatch):
    """Replace the entry-point group with fake plugins; record how often the group is read."""
    calls = []
    eps: list[_EP] = []

    def entry_points(group=None):
        calls.append(group)
        return list(eps) if group == R.PLUGIN_GROUP else []

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    monkeypatch.setattr(R, "_plugins_loaded", False)
    yield calls, eps
    for name in ("plugin-demo",):
        if name in R.METRICS:
            unregister_metric(name)


def test_own_metrics_never_load_plugins(fake_plugins):
    calls, _ = fake_plugins
    for name in ("mse", "ssim:downsample=false", "msssim", "lpips", "fsimc"):
        get_metric(name)
    list_metrics()
    metric_names()
    assert calls == []


def test_a_miss_loads_plugins_once(fake_plugins):
    calls, eps = fake_plugins
    eps.append(_EP("plugin-demo", lambda: register_metric(_spec("plugin-demo"))))
    spec = get_metric("plugin-demo")
    assert spec.name == "plugin-demo" and calls == [R.PLUGIN_GROUP]
    with pytest.raises(UnknownNameError, match="did you mean 'plugin-demo'"):
        get_metric("plugin-dem")
    assert calls == [R.PLUGIN_GROUP]  # not read again


def test_a_broken_plugin_is_logged_and_skipped(fake_plugins, caplog):
    _, eps = fake_plugins

    def boom():
        raise ImportError("no module named nowhere")

    eps.append(_EP("broken", boom))
    with caplog.at_level(logging.WARNING, logger="lossarena.metrics.registry"):
        with pytest.raises(UnknownNameError, match="unknown metric 'broken'"):
            get_metric("broken")
    assert "metric plugin broken" in caplog.text and "nowhere" in caplog.text


def test_explicit_registration_api():
    spec = register_metric(_spec())
    try:
        assert get_metric("l1-test") is spec and "l1-test" in metric_names()
        assert register_metric(spec) is spec  # the same spec again: a no-op (module imported twice)
        with pytest.raises(ValueError, match="already registered"):
            register_metric(_spec())  # a different spec under a taken name
        other = register_metric(_spec(description="v2"), replace=True)
        assert get_metric("l1-test") is other
        x = torch.zeros(2, 3, 4, 4)
        assert torch.equal(get_metric("l1-test").function(x, x + 1), torch.ones(2))
        with pytest.raises(ValueError, match="bound options"):
            register_metric(get_metric("ssim:downsample=false"))
    finally:
        unregister_metric("l1-test")
    with pytest.raises(UnknownNameError, match="unknown metric 'l1-test'"):
        get_metric("l1-test")


def test_unregister_removes_aliases():
    register_metric(_spec("l1-alias-test", aliases=("l1a-test",)))
    assert get_metric("l1a-test").name == "l1-alias-test"
    unregister_metric("l1a-test")
    assert "l1-alias-test" not in R.METRICS and "l1a-test" not in R.METRICS
