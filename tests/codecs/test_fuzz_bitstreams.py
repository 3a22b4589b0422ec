"""Seeded fuzzing of the ``.lar`` decoders with crafted files whose CRC32 is valid (issue 12).

A few hundred mutations (header fields, metadata, stream/string counts, length fields, truncation,
extension, random payload bytes, crafted rANS states, huge claimed sizes) of valid bitstreams of small
*untrained, seeded stand-in* checkpoints (decode robustness does not need trained weights). Every case
must end in exit 0 with an image identical over two decodes, or in exit 2 with a one-line message,
within a time budget. The mutation engine is ``benchmarks/fuzz_bitstreams.py`` (whose subprocess
campaign of ≥ 1,000 cases per codec also counts signals, hangs and memory).
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import pytest
import torch
from lossarena.codecs.bitstream import Bitstream, Limits

from lossarena.errors import LossarenaError

pytestmark = pytest.mark.usefixtures("one_thread")

CASE_BUDGET_S = 20.0  # per case, on a loaded 2-core box (typical: milliseconds)


def _fuzz_module():
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "fuzz_bitstreams.py"
    spec = importlib.util.spec_from_file_location("fuzz_bitstreams", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def fz():
    return _fuzz_module()


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


def _decode_lib(codec, data: bytes, limits: Limits):
    """The CLI's decode steps on a preloaded codec: (exit code, message, image)."""
    try:
        bs = Bitstream.from_bytes(data, source="case.lar", limits=limits)
        return 0, "", codec.decompress(bs, source="case.lar")
    except LossarenaError as e:
        return e.exit_code, str(e), None


def _check_cases(fz, codec, ckpt, cases, folder: Path, cli_every: int):
    limits = Limits(max_pixels=fz.FUZZ_MAX_PIXELS)
    outcomes = {0: 0, 2: 0}
    for k, (ops, data) in enumerate(cases):
        t0 = time.perf_counter()
        if k % cli_every == 0:  # the command line itself, in-process
            lar, png = folder / f"c{k}.lar", folder / f"c{k}.png"
            lar.write_bytes(data)
            rc, err = fz.decode_cli(fz_codec_name(codec), ckpt, lar, png)
            assert rc in (0, 2), f"case {k} ({ops}): exit {rc}\n{err}"
            if rc == 2:
                assert len(err.strip().splitlines()) == 1, f"case {k} ({ops}): {err}"
                assert not png.exists()
            else:
                first = png.read_bytes()
                assert fz.decode_cli(fz_codec_name(codec), ckpt, lar, png)[0] == 0
                assert png.read_bytes() == first, f"case {k} ({ops}): nondeterministic"
        else:
            rc, msg, x = _decode_lib(codec, data, limits)
            assert rc in (0, 2), f"case {k} ({ops}): exit {rc}: {msg}"
            if rc == 2:
                assert msg and "\n" not in msg, f"case {k} ({ops}): {msg!r}"
            else:
                assert x.shape[:2] == (1, 3) and bool(torch.isfinite(x).all())
                assert 0 <= float(x.min()) and float(x.max()) <= 1
                rc2, _, x2 = _decode_lib(codec, data, limits)
                assert rc2 == 0 and torch.equal(x, x2), f"case {k} ({ops}): nondeterministic"
        outcomes[rc] += 1
        dt = time.perf_counter() - t0
        assert dt < CASE_BUDGET_S, f"case {k} ({ops}) took {dt:.1f} s"
    return outcomes


def fz_codec_name(codec) -> str:
    return "roi" if type(codec).__name__ == "RoiCodec" else "hyperprior"


def test_fuzz_hyperprior_bitstreams(fz, folder):
    from lossarena.codecs.coder import HyperpriorCodec

    ckpt = fz.hyperprior_standin(folder)
    cases = fz.make_cases("hyperprior", ckpt, 240, seed=12)
    out = _check_cases(fz, HyperpriorCodec(ckpt), ckpt, cases, folder, cli_every=24)
    assert out[0] >= 3 and out[2] >= 150  # the valid seeds decode; most crafted files are refused


def test_fuzz_roi_bitstreams(fz, folder):
    from lossarena.codecs.roi.codec import RoiCodec

    ckpt = fz.roi_standin(folder)
    cases = fz.make_cases("roi", ckpt, 100, seed=12)
    out = _check_cases(fz, RoiCodec(ckpt), ckpt, cases, folder, cli_every=25)
    assert out[0] >= 2 and out[2] >= 60


def test_issue_repros_exit_2_fast(fz, folder):
    """The issue's repros: a small file claiming 4096x65535, ``meta = []``, deep nesting."""
    ckpt = fz.hyperprior_standin(folder)
    f = fz.parse(fz.seed_streams("hyperprior", ckpt)[0])
    variants = {"huge": dict(f, h=4096, w=65535), "meta-list": dict(f, meta=b"[]"),
                "deep": dict(f, meta=b"[" * 100000 + b"]" * 100000)}
    for name, g in variants.items():
        lar = folder / f"repro-{name}.lar"
        lar.write_bytes(fz.serialize(g))
        t0 = time.perf_counter()
        rc, err = fz.decode_cli("hyperprior", ckpt, lar, folder / f"repro-{name}.png", max_pixels=1 << 24)
        assert rc == 2 and len(err.strip().splitlines()) == 1, (name, err)
        assert time.perf_counter() - t0 < CASE_BUDGET_S
