"""``lossarena metrics score|list``: the CLI contract other tools depend on.

Image files of every supported kind are written here with known pixel values, and the JSON the CLI
prints is checked against MSE/PSNR computed directly from those values (so a wrong bit depth, a
wrong grey or alpha conversion, or a swapped argument shows up as a wrong number).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from lossarena.pipeline.cli import main as lossarena_main
from PIL import Image

from lossarena.metrics import list_metrics

pytest_plugins = ("standin",)

H, W = 48, 40


def _rgb8(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (H, W, 3), dtype=np.uint8)


def _score(capsys, *argv) -> tuple[int, str, str]:
    rc = lossarena_main(["metrics", "score", *map(str, argv)])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def _mse_psnr(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return mse, -10 * np.log10(mse + 1e-10)


def _check(capsys, ref: Path, dist: Path, expect_ref: np.ndarray, expect_dist: np.ndarray, tol=1e-6):
    rc, out, err = _score(capsys, ref, dist, "-m", "mse", "-m", "psnr", "--json")
    assert rc == 0, err
    vals = json.loads(out)
    assert list(vals) == ["mse", "psnr"]
    mse, psnr = _mse_psnr(expect_dist, expect_ref)
    assert vals["mse"] == pytest.approx(mse, rel=1e-5, abs=tol)
    assert vals["psnr"] == pytest.approx(psnr, abs=1e-3)
    return vals


def test_png8_rgb_and_bmp(tmp_path, capsys):
    a, b = _rgb8(0), _rgb8(1)
    for suffix in (".png", ".bmp"):
        Image.fromarray(a).save(tmp_path / f"ref{suffix}")
        Image.fromarray(b).save(tmp_path / f"dist{suffix}")
        _check(capsys, tmp_path / f"ref{suffix}", tmp_path / f"dist{suffix}", a / 255, b / 255)


def test_png16_full_precision(tmp_path, capsys):
    import imagecodecs

    rng = np.random.default_rng(2)
    a = rng.integers(0, 65536, (H, W, 3), dtype=np.uint16)
    b = np.clip(a.astype(np.int64) + rng.integers(-40, 41, a.shape), 0, 65535).astype(np.uint16)
    (tmp_path / "ref.png").write_bytes(imagecodecs.png_encode(a))
    (tmp_path / "dist.png").write_bytes(imagecodecs.png_encode(b))
    vals = _check(capsys, tmp_path / "ref.png", tmp_path / "dist.png", a / 65535, b / 65535, tol=1e-12)
    # differences of < 1/1000 would vanish at 8 bits (Pillow reads 16-bit RGB as 8-bit)
    assert 0 < vals["mse"] < 1e-6
    # 16-bit grey
    (tmp_path / "g_ref.png").write_bytes(imagecodecs.png_encode(np.ascontiguousarray(a[..., 0])))
    (tmp_path / "g_dist.png").write_bytes(imagecodecs.png_encode(np.ascontiguousarray(b[..., 0])))
    _check(capsys, tmp_path / "g_ref.png", tmp_path / "g_dist.png", a[..., :1] / 65535, b[..., :1] / 65535,
           tol=1e-12)


def test_grey_is_replicated(tmp_path, capsys):
    a, b = _rgb8(3)[..., 0], _rgb8(4)[..., 0]
    Image.fromarray(a, "L").save(tmp_path / "ref.png")
    Image.fromarray(b, "L").save(tmp_path / "dist.png")
    _check(capsys, tmp_path / "ref.png", tmp_path / "dist.png", a / 255, b / 255)


def test_rgba_composited_over_white(tmp_path, capsys):
    rgb, alpha = _rgb8(5), np.random.default_rng(6).integers(0, 256, (H, W, 1), dtype=np.uint8)
    ref = _rgb8(7)
    Image.fromarray(np.concatenate([rgb, alpha], 2), "RGBA").save(tmp_path / "dist.png")
    Image.fromarray(ref).save(tmp_path / "ref.png")
    al = alpha / 255
    expect = rgb / 255 * al + (1 - al)
    _check(capsys, tmp_path / "ref.png", tmp_path / "dist.png", ref / 255, expect)


def test_jpeg(tmp_path, capsys):
    a = _rgb8(8)
    Image.fromarray(a).save(tmp_path / "ref.png")
    Image.fromarray(a).save(tmp_path / "dist.jpg", quality=50)
    decoded = np.asarray(Image.open(tmp_path / "dist.jpg").convert("RGB"))
    vals = _check(capsys, tmp_path / "ref.png", tmp_path / "dist.jpg", a / 255, decoded / 255)
    assert vals["mse"] > 0


def test_text_output_and_argument_order(tmp_path, capsys):
    """REF first on the command line; PSNR/MSE are symmetric, so check the order with a non-symmetric
    detail: a 2-pixel size mismatch is reported against the *distorted* file."""
    a = _rgb8(9)
    Image.fromarray(a).save(tmp_path / "ref.png")
    Image.fromarray(a[:-2]).save(tmp_path / "dist.png")
    rc, out, err = _score(capsys, tmp_path / "ref.png", tmp_path / "dist.png", "-m", "mse")
    assert rc == 2
    assert f"{tmp_path / 'dist.png'}" in err and "expected" in err and f"{W}x{H}" in err
    Image.fromarray(_rgb8(10)).save(tmp_path / "dist.png")
    rc, out, err = _score(capsys, tmp_path / "ref.png", tmp_path / "dist.png", "-m", "mse", "-m", "psnr")
    assert rc == 0
    lines = out.strip().splitlines()
    assert [ln.split()[0] for ln in lines] == ["mse", "psnr"]
    assert "lower is better" in lines[0] and "higher is better" in lines[1]
    float(lines[0].split()[1])


def test_errors_exit_2(tmp_path, capsys):
    a = _rgb8(11)
    Image.fromarray(a).save(tmp_path / "ref.png")
    Image.fromarray(a).save(tmp_path / "dist.png")
    rc, _, err = _score(capsys, tmp_path / "ref.png", tmp_path / "dist.png", "-m", "psnrr")
    assert rc == 2 and "did you mean 'psnr'" in err
    rc, _, err = _score(capsys, tmp_path / "ref.png", tmp_path / "dist.png", "-m", "lpip")
    assert rc == 2 and "did you mean 'lpips'" in err
    rc, _, err = _score(capsys, tmp_path / "missing.png", tmp_path / "dist.png", "-m", "mse")
    assert rc == 2 and str(tmp_path / "missing.png") in err
    (tmp_path / "junk.png").write_bytes(b"not an image at all")
    rc, _, err = _score(capsys, tmp_path / "ref.png", tmp_path / "junk.png", "-m", "mse")
    assert rc == 2 and str(tmp_path / "junk.png") in err
    rc = lossarena_main(["metrics", "score", str(tmp_path / "ref.png")])  # argparse: missing DIST
    assert rc == 2


def test_default_set_and_small_images(tmp_path, capsys, empty_home):
    """Without -m: every metric whose weights are present (none of the deep ones here) and whose
    minimum size the image meets; the others are named on stderr."""
    a, b = _rgb8(12), _rgb8(13)
    Image.fromarray(a).save(tmp_path / "ref.png")
    Image.fromarray(b).save(tmp_path / "dist.png")
    rc, out, err = _score(capsys, tmp_path / "ref.png", tmp_path / "dist.png", "--json")
    assert rc == 0, err
    vals = json.loads(out)
    expected = [s.name for s in list_metrics() if not s.needs_weights and s.min_size <= min(H, W)]
    assert list(vals) == expected
    assert all(v is None or np.isfinite(v) for v in vals.values())
    for s in list_metrics():
        if not s.needs_weights and s.min_size > min(H, W):
            assert f"{s.name} skipped" in err
            rc2, _, err2 = _score(capsys, tmp_path / "ref.png", tmp_path / "dist.png", "-m", s.name)
            assert rc2 == 2 and "expected" in err2


def test_list_columns(capsys, empty_home):
    assert lossarena_main(["metrics", "list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["name", "better", "differentiable", "weights"]
    rows = {ln.split()[0]: ln.split() for ln in out[1:]}
    for s in list_metrics():
        r = rows[s.name]
        assert r[1] == ("lower" if s.lower_better else "higher")
        assert r[2] == str(s.differentiable).lower()
        assert (r[3] == "missing") if s.needs_weights else (" ".join(r[3:]) == "none needed")
    assert lossarena_main(["metrics", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == [s.name for s in list_metrics()]
    assert set(rows[0]) >= {"name", "direction", "differentiable", "weights"}


def test_real_subprocess(tmp_path):
    exe = Path(sys.executable).parent / "lossarena"
    assert exe.is_file(), f"console script missing: {exe}"
    a, b = _rgb8(14), _rgb8(15)
    Image.fromarray(a).save(tmp_path / "ref.png")
    Image.fromarray(b).save(tmp_path / "dist.png")
    env = {k: v for k, v in os.environ.items() if k != "LOSSARENA_STANDIN_BACKBONES"}
    env["TORCH_HOME"] = str(tmp_path / "torch_home")
    r = subprocess.run([str(exe), "metrics", "score", str(tmp_path / "ref.png"), str(tmp_path / "dist.png"),
                        "-m", "psnr", "--json"], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["psnr"] == pytest.approx(_mse_psnr(b / 255, a / 255)[1], abs=1e-3)


def test_weights_cli_exit_codes_and_stderr(capsys, empty_home, monkeypatch):
    from lossarena import weights_cli
    from lossarena.metrics import weights as W

    assert weights_cli.main(["status"]) == 0
    cap = capsys.readouterr()
    assert "alexnet" in cap.out and "missing" in cap.out and cap.err == ""
    assert weights_cli.main(["download", "alexnett"]) == 2
    cap = capsys.readouterr()
    assert cap.out == "" and "expected a backbone among" in cap.err and "'alexnett'" in cap.err

    def offline(names=None, **kw):
        raise OSError("Temporary failure in name resolution")

    monkeypatch.setattr(W, "download", offline)
    assert weights_cli.main(["download", "alexnet"]) == 3  # weights still missing
    cap = capsys.readouterr()
    assert cap.out == "" and "download failed" in cap.err and len(cap.err.strip().splitlines()) == 1
    assert weights_cli.main(["frobnicate"]) == 2
    assert weights_cli.main(["--help"]) == 0


def test_log_configure_levels():
    import io
    import logging

    from lossarena import log

    buf = io.StringIO()
    lg = logging.getLogger("lossarena.metrics.test")
    try:
        log.configure(0, stream=buf)
        lg.info("hidden")
        lg.warning("shown %d", 1)
        log.configure(1, stream=buf)  # reconfiguring replaces the handler: no duplicate lines
        lg.info("info now")
        lg.debug("no debug yet")
        log.configure(2, stream=buf)
        lg.debug("debug")
        log.configure(-1, stream=buf)
        lg.warning("quiet")
        lg.error("only errors")
    finally:
        log.configure(0)
    assert buf.getvalue().splitlines() == [
        "warning: shown 1", "info: info now", "debug lossarena.metrics.test: debug", "error: only errors",
    ]
