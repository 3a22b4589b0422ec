"""Metric options: ``NAME[:key=value,...]`` specs, typed coercion, Python keywords, the CLI's ``-m``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from lossarena.errors import InputError, UnknownNameError, UnknownOptionError
from lossarena.metrics import (
    MetricOption,
    compute,
    format_metric_spec,
    get_loss,
    get_metric,
    list_metrics,
    parse_metric_spec,
)
from lossarena.metrics.cli import main as metrics_main


def test_parse_coerces_by_declared_type_and_keeps_the_string_as_key():
    ref = parse_metric_spec("ssim:downsample=false,color=rgb")
    assert ref.name == "ssim"
    assert ref.kwargs == {"downsample": False, "color": "rgb"}
    assert ref.key == "ssim:downsample=false,color=rgb"
    ref = parse_metric_spec("MS-SSIM: scales = 3 ")  # alias/case resolved, whitespace ignored
    assert ref.name == "ms-ssim" and ref.kwargs == {"scales": 3} and type(ref.kwargs["scales"]) is int
    assert ref.key == "MS-SSIM: scales = 3 "
    assert parse_metric_spec("gmsd:t=100").kwargs == {"t": 100.0}
    for text, want in (("true", True), ("0", False), ("YES", True), ("off", False)):
        assert parse_metric_spec(f"fsim:chromatic={text}").kwargs == {"chromatic": want}


def test_python_keywords_and_spec_string_agree():
    a = parse_metric_spec("ssim", downsample=False)
    assert a.kwargs == {"downsample": False} and a.key == "ssim:downsample=false"
    b = parse_metric_spec("ssim:color=rgb", downsample="false")  # YAML may give text
    assert b.kwargs == {"color": "rgb", "downsample": False} and b.key == "ssim:color=rgb,downsample=false"
    assert format_metric_spec("ssim", {"downsample": False, "color": "y"}) == "ssim:downsample=false,color=y"
    with pytest.raises(ValueError, match="once"):
        parse_metric_spec("ssim:downsample=false", downsample=True)


@pytest.mark.parametrize("text, exc, match", [
    ("ssim:downsampl=false", UnknownOptionError, "did you mean 'downsample'"),
    ("mse:eps=1", UnknownOptionError, "expected no options, got 'eps'"),
    ("sim", UnknownNameError, "did you mean 'ssim'"),
    ("ssim:downsample=maybe", InputError, "expected true or false, got 'maybe'"),
    ("ssim:color=rgg", InputError, "did you mean 'rgb'"),
    ("ms-ssim:scales=7", InputError, "expected one of 1, 2, 3, 4, 5, got '7'"),
    ("ms-ssim:scales=2.5", InputError, "expected an integer"),
    ("gmsd:t=nan", InputError, "finite"),
    ("ssim:", InputError, "expected key=value"),
    ("ssim:downsample", InputError, "key=value"),
    ("ssim:color=y,color=rgb", InputError, "twice"),
    (":color=y", InputError, "metric name"),
    ("ssim:" + "x" * 2000, InputError, "at most"),
])
def test_bad_specs_raise_value_errors_with_hints(text, exc, match):
    with pytest.raises(exc, match=match):
        get_metric(text)
    assert issubclass(exc, ValueError)


def test_unknown_option_is_also_a_type_error_like_an_unexpected_keyword():
    with pytest.raises(TypeError):
        get_loss("ssim", downsampel=False)


def test_bound_options_change_values_and_min_size():
    g = torch.Generator().manual_seed(0)
    y = torch.rand(2, 3, 600, 520, generator=g)
    x = (y + 0.1 * torch.randn(y.shape, generator=g)).clamp(0, 1)
    default = compute("ssim", x, y)
    off = compute("ssim:downsample=false", x, y)
    assert torch.equal(off, compute("ssim", x, y, downsample=False))
    assert torch.equal(default, get_metric("ssim").function(x, y))
    assert (off - default).abs().min() > 1e-3  # f = 2 here: downsampling changes the value
    spec = get_metric("ms-ssim:scales=3")
    assert spec.min_size == 41 and get_metric("ms-ssim").min_size == 161
    assert spec.key == "ms-ssim:scales=3" and get_metric("ms-ssim").key == "ms-ssim"
    assert get_metric("ssim") is get_metric("SSIM") or get_metric("SSIM").name == "ssim"
    m = spec.module(reduction="mean")
    small = torch.rand(1, 3, 48, 48, generator=g)
    assert torch.allclose(m(small, small), torch.tensor(1.0))


def test_loss_from_spec_string_uses_the_options():
    g = torch.Generator().manual_seed(1)
    y = torch.rand(1, 3, 64, 64, generator=g)
    x = (y + 0.05 * torch.randn(y.shape, generator=g)).clamp(0, 1)
    loss = get_loss("ssim:color=rgb")(x, y)
    assert torch.allclose(loss, 1 - compute("ssim", x, y, color="rgb").mean())
    assert not torch.allclose(loss, 1 - compute("ssim", x, y).mean())


def test_every_option_is_a_real_keyword_of_its_function():
    """Each declared option with its default is accepted by the function and gives the default value."""
    import inspect

    for spec in list_metrics():
        params = inspect.signature(spec.function).parameters
        for o in spec.options:
            assert isinstance(o, MetricOption)
            assert o.name in params, (spec.name, o.name)
            assert o.type in (bool, int, float, str)
            assert o.coerce(o.default, spec.name) == o.default
            assert o.describe().startswith(f"{o.name}=<")


def _pair(tmp_path):
    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-20, 21, a.shape), 0, 255).astype(np.uint8)
    Image.fromarray(a).save(tmp_path / "ref.png")
    Image.fromarray(b).save(tmp_path / "dist.png")
    return str(tmp_path / "ref.png"), str(tmp_path / "dist.png")


def test_cli_metric_options_keyed_by_the_string_given(tmp_path, capsys):
    ref, dist = _pair(tmp_path)
    rc = metrics_main(["score", ref, dist, "-m", "ssim", "-m", "ssim:color=rgb", "-m", "ms-ssim:scales=2",
                       "--json"])
    out = capsys.readouterr().out
    assert rc == 0
    d = json.loads(out)
    assert list(d) == ["ssim", "ssim:color=rgb", "ms-ssim:scales=2"]
    assert d["ssim"] != d["ssim:color=rgb"]
    rc = metrics_main(["score", ref, dist, "-m", "ssim:colour=rgb"])
    err = capsys.readouterr().err
    assert rc == 2 and "did you mean 'color'" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_cli_list_shows_options(capsys):
    assert metrics_main(["list", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert any(o.startswith("downsample=<bool>") for o in rows["ssim"]["options"])
    assert metrics_main(["list", "--options"]) == 0
    assert "downsample=<bool> (default true)" in capsys.readouterr().out


def test_docs_list_every_option():
    from lossarena.paths import REPO_ROOT

    text = (REPO_ROOT / "docs" / "metrics_options.md").read_text()
    own = [s for s in list_metrics() if s.function.__module__.startswith("lossarena.metrics")]
    assert len(own) >= 12
    for spec in own:  # metrics registered by higher layers (dpis) document their options there
        for o in spec.options:
            assert f"| `{spec.name}` | `{o.name}` |" in text, (spec.name, o.name)
