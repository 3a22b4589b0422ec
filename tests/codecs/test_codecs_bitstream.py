"""Real bitstreams: round trip at any size, the container, and clear errors on damaged input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from codecs_helpers import images, session_dir, tiny_checkpoint
from hypothesis import given, settings
from hypothesis import strategies as st
from lossarena.codecs.bitstream import Bitstream, BitstreamError, Limits, file_hash
from lossarena.codecs.cli import main as codecs_main
from lossarena.codecs.coder import HyperpriorCodec
from lossarena.data.images import list_images, load_image

from lossarena.errors import InputError


@pytest.fixture(scope="module")
def codec():
    return HyperpriorCodec(tiny_checkpoint())


@settings(max_examples=40, deadline=None)
@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12), st.integers(1, 5000),
       st.integers(1, 5000), st.binary(min_size=16, max_size=16),
       st.lists(st.lists(st.binary(max_size=40), max_size=3), max_size=3),
       st.dictionaries(st.text(max_size=5), st.integers(), max_size=3))
def test_container_round_trip(codec_id, h, w, hsh, strings, meta):
    bs = Bitstream(codec_id, h, w, hsh, strings, meta)
    back = Bitstream.from_bytes(bs.to_bytes(), limits=Limits(max_pixels=5000 * 5000))
    assert back == bs


@pytest.mark.parametrize("size", [(64, 64), (37, 70), (96, 128), (1, 65)])
def test_round_trip_any_size_matches_forward(codec, size):
    x = load_image(list_images(images())[0])[..., : size[0], : size[1]]
    bs = codec.compress(x)
    data = bs.to_bytes()
    y = codec.decompress(Bitstream.from_bytes(data))
    assert y.shape == x.shape
    # the decoded image is exactly the eval-mode forward pass (same quantised latents)
    _, x_fwd = codec.estimate(x)
    assert torch.allclose(y, x_fwd, atol=1e-5)
    # and it is a reconstruction (uniform noise would give MSE ~0.17)
    assert float((y - x).pow(2).mean()) < 0.1


def test_corruption_truncation_and_wrong_checkpoint(codec):
    x = load_image(list_images(images())[1])
    data = codec.compress(x).to_bytes()
    n = len(data)
    offsets = sorted(set(range(0, n, max(1, n // 97))) | {0, 3, 4, 5, n - 5, n - 1})
    for off in offsets:  # every single-byte flip is caught (CRC, magic, version)
        bad = bytearray(data)
        bad[off] ^= 0x5A
        with pytest.raises(BitstreamError):
            codec.decompress(Bitstream.from_bytes(bytes(bad)))
    for cut in sorted(set(range(0, n, max(1, n // 97))) | {n - 1}):
        with pytest.raises(BitstreamError):
            codec.decompress(Bitstream.from_bytes(data[:cut]))
    with pytest.raises(BitstreamError):
        Bitstream.from_bytes(data + b"\0")
    other = HyperpriorCodec(tiny_checkpoint(steps=3, name="other"))
    with pytest.raises(BitstreamError, match="checkpoint"):
        other.decompress(Bitstream.from_bytes(data))


def test_cli_round_trip_and_exit_codes(codec, capsys):
    from lossarena.pipeline.cli import main as la_main

    d = session_dir() / "cli"
    d.mkdir(exist_ok=True)
    src = list_images(images())[2]
    ck = str(tiny_checkpoint())
    assert codecs_main(["compress", ck, str(src), str(d / "a.lar")]) == 0
    assert codecs_main(["decompress", ck, str(d / "a.lar"), str(d / "a.png")]) == 0
    assert load_image(d / "a.png").shape == load_image(src).shape
    raw = (d / "a.lar").read_bytes()
    (d / "cut.lar").write_bytes(raw[: len(raw) // 2])
    assert la_main(["codecs", "decompress", ck, str(d / "cut.lar"), str(d / "b.png")]) == 2
    assert "not a valid lossarena bitstream" in capsys.readouterr().err
    assert not (d / "b.png").exists()
    other = str(tiny_checkpoint(steps=3, name="other"))
    assert la_main(["codecs", "decompress", other, str(d / "a.lar"), str(d / "c.png")]) == 2
    assert "decode with the checkpoint that encoded it" in capsys.readouterr().err
    assert file_hash(ck) != file_hash(other)



# ------------------------------------------------------------------ hostile input: limits, schema, checked rANS
def _tables(rng, n_tables):
    """Random valid 16-bit CDFs (≥ 2 symbols incl. the escape slot), zero-padded like CompressAI's buffers."""
    cdfs = []
    for _ in range(n_tables):
        n = int(rng.integers(2, 40))
        f = rng.integers(1, 60, n).astype(float)
        q = np.maximum(1, np.floor(f / f.sum() * (65536 - n))).astype(int)
        q[int(np.argmax(q))] += 65536 - int(q.sum())
        cdfs.append([0, *np.cumsum(q).tolist()])
    width = max(len(c) for c in cdfs) + 2
    return [c + [0] * (width - len(c)) for c in cdfs], [len(c) for c in cdfs]


def test_checked_rans_equals_compressai_on_random_streams():
    """Symbols incl. escapes up to ±2^26 (bypass coding): CompressAI's encoder, both decoders agree."""
    from compressai.ans import BufferedRansEncoder, RansDecoder
    from lossarena.codecs.entropy import decode_with_indexes

    rng = np.random.default_rng(0)
    for _ in range(60):
        cdfs, lengths = _tables(rng, int(rng.integers(1, 6)))
        offsets = rng.integers(-30, 10, len(cdfs)).tolist()
        n = int(rng.integers(8, 400))  # CompressAI's encoder overruns its buffer below ~8 symbols
        idx = rng.integers(0, len(cdfs), n).tolist()
        syms = [int(rng.integers(offsets[t] - 2, offsets[t] + lengths[t] + 2)) for t in idx]
        for k in rng.integers(0, n, n // 10):
            syms[k] = int(rng.integers(-(1 << 26), 1 << 26))
        enc = BufferedRansEncoder()
        enc.encode_with_indexes(syms, idx, cdfs, lengths, offsets)
        s = enc.flush()
        ref = RansDecoder().decode_with_indexes(s, idx, cdfs, lengths, offsets)
        assert ref == syms
        assert decode_with_indexes(s, idx, cdfs, lengths, offsets, max_abs=None) == ref


@pytest.mark.parametrize("size", [(64, 64), (37, 70), (96, 128), (1, 65)])
def test_checked_hyperprior_decode_equals_compressai(codec, size):
    from lossarena.codecs.entropy import checked_hyperprior_decompress

    x = load_image(list_images(images())[1])[..., : size[0], : size[1]]
    bs = codec.compress(x)
    shape = (-(-size[0] // 64), -(-size[1] // 64))
    ref = codec.model.decompress(bs.strings, shape)["x_hat"]
    assert torch.equal(checked_hyperprior_decompress(codec.model, bs.strings, shape), ref)


def test_crafted_rans_strings_are_refused_not_overread():
    from lossarena.codecs.entropy import CorruptStreamError, RansDecoder, decode_with_indexes

    rng = np.random.default_rng(1)
    cdfs, lengths = _tables(rng, 3)
    offsets = [-5, 0, 3]
    idx = rng.integers(0, 3, 500).tolist()
    start = (1 << 31).to_bytes(8, "little")  # the encoder's initial state, as if nothing was coded
    for bad, n, why in [(b"", 9, "at least 8"), (b"\x00" * 10, 9, "multiple of 4"), (b"\xff" * 4096, 50, "more than 50"),
                        (start, 500, "ends after 8 bytes"), (start + b"\x01" * 4, 0, "4 bytes left"),
                        (b"\xff" * 16, 9, "escape of 15 nibbles"), ((5 << 40).to_bytes(8, "little"), 0, "final state")]:
        with pytest.raises(CorruptStreamError, match=why):
            decode_with_indexes(bad, idx[:n], cdfs, lengths, offsets)
    # an escape claiming 15 nibbles (CompressAI's decoder would keep reading counts): refused at once
    one = [[0, 1, 65536]]  # symbol 0 has probability 1/65536, symbol 1 is the escape
    state = (0xF << 0) | (1 << 16) | (1 << 40)  # cum = 1 (escape), then the count nibble = 15
    data = (state & 0xFFFFFFFF).to_bytes(4, "little") + (state >> 32).to_bytes(4, "little") + bytes(64)
    with pytest.raises(CorruptStreamError):
        RansDecoder(data).decode_stream([0] * 4, one, [3], [0])
    # random strings: every outcome is a clean error or a deterministic result (mostly errors: the final
    # state must be the encoder's initial one)
    for _ in range(300):
        s = rng.integers(0, 256, int(rng.integers(2, 40)) * 4, dtype=np.uint8).tobytes()
        try:
            a = decode_with_indexes(s, idx[:40], cdfs, lengths, offsets)
        except CorruptStreamError as e:
            assert "\n" not in str(e)
        else:
            assert decode_with_indexes(s, idx[:40], cdfs, lengths, offsets) == a


def test_limits_refuse_huge_claims_before_allocating(codec, monkeypatch):
    x = load_image(list_images(images())[0])[..., :64, :64]
    bs = codec.compress(x)
    for h, w, why in [(4096, 16384, "more than the limit of 16777216"), (4096, 65535, "outside")]:
        with pytest.raises(BitstreamError, match=why):
            Bitstream.from_bytes(Bitstream(bs.codec, h, w, bs.ckpt_hash, bs.strings, {}).to_bytes())
    with pytest.raises(BitstreamError, match="outside"):
        Bitstream.from_bytes(Bitstream(bs.codec, 0, 64, bs.ckpt_hash, bs.strings, {}).to_bytes())
    monkeypatch.setenv("LOSSARENA_MAX_BITSTREAM_PIXELS", "1000")
    with pytest.raises(BitstreamError, match="more than the limit of 1000"):
        Bitstream.from_bytes(bs.to_bytes())
    assert Limits.from_env(max_pixels="5000").max_pixels == 5000  # the flag wins over the environment
    monkeypatch.setenv("LOSSARENA_MAX_BITSTREAM_PIXELS", "lots")
    with pytest.raises(InputError, match="LOSSARENA_MAX_BITSTREAM_PIXELS: expected a positive integer"):
        Limits.from_env()
    monkeypatch.delenv("LOSSARENA_MAX_BITSTREAM_PIXELS")
    # within the limits but with a string too long for the shape: refused before decoding
    long_y = Bitstream(bs.codec, 64, 64, bs.ckpt_hash, [[bs.strings[0][0] + bytes(1 << 16)], bs.strings[1]], {})
    with pytest.raises(BitstreamError, match="corrupt y string.*more than"):
        codec.decompress(Bitstream.from_bytes(long_y.to_bytes()))


@pytest.mark.parametrize("meta_raw, why", [
    (b"[]", "expected a JSON object"), (b"[" * 5000 + b"]" * 5000, "more than 4096"),
    (b"[" * 100 + b"]" * 100, "nested deeper"), (b'{"a": NaN}', "not valid JSON"),
    (b'{"a": 1, "a": 2}', "duplicate"), (b"\xff\xfe", "not UTF-8"), (b'{"z_shape": "x"}', "expected int pair"),
    (b'{"rate": 1}', "unknown key"), (b'{"z_shape": [1, 1, 1]}', "expected int pair"),
    (b'{"s": "' + b"x" * 300 + b'"}', "longer than"),
])
def test_header_metadata_is_schema_checked(codec, meta_raw, why):
    import struct
    import zlib

    x = load_image(list_images(images())[0])[..., :64, :64]
    data = codec.compress(x).to_bytes()[:-4]
    # splice the raw metadata in place of "{}" and recompute the CRC, as an attacker would
    i = data.index(b"\x00\x00\x00\x02{}")
    body = data[:i] + struct.pack(">I", len(meta_raw)) + meta_raw + data[i + 6:]
    crafted = body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)
    with pytest.raises(BitstreamError, match=why):
        codec.decompress(Bitstream.from_bytes(crafted))


def test_cli_max_pixels_flag(codec, capsys):
    d = session_dir() / "cli-limits"
    d.mkdir(exist_ok=True)
    ck = str(tiny_checkpoint())
    x = load_image(list_images(images())[0])
    codec.compress(x).write(d / "a.lar")
    assert codecs_main(["decompress", ck, str(d / "a.lar"), str(d / "a.png"), "--max-pixels", "1000"]) == 2
    err = capsys.readouterr().err.strip()
    assert "more than the limit of 1000" in err and len(err.splitlines()) == 1
    assert not (d / "a.png").exists()
    assert codecs_main(["decompress", ck, str(d / "a.lar"), str(d / "a.png"), "--max-pixels", "20000"]) == 0
    assert codecs_main(["decompress", ck, str(d / "a.lar"), str(d / "b.png"), "--max-pixels", "0"]) == 2


@pytest.mark.parametrize("size", [(64, 64), (64, 128)])
def test_checked_rans_equals_compressai_on_roi_gmm_streams(size):
    """The ROI codec's per-position GMM tables: C++ and checked decoders in lockstep give the same symbols."""
    from compressai.ans import RansDecoder as CppDecoder
    from lossarena.codecs.entropy import RansDecoder, checked_bottleneck_decompress
    from lossarena.codecs.roi.checkpoint import build_model
    from lossarena.codecs.roi.config import load_config
    from lossarena.codecs.roi.model import KERNEL

    torch.manual_seed(0)
    cfg = load_config({"lambdas": [20, 10], "model": {"N": 16, "M": 16, "K": 3, "n_rates": 2, "protected": 4,
                                                      "attn_blocks": 1}})
    m = build_model(cfg).eval()  # untrained, seeded: the coding path does not depend on training
    m.update(force=True)
    x = load_image(list_images(images())[0])[..., : size[0], : size[1]]
    with torch.no_grad():
        y_strings, z_string, z_shape, y_q = m.compress(x, None, 1.0)
        z_ref = m.entropy_bottleneck.decompress([z_string], z_shape)
        assert torch.equal(checked_bottleneck_decompress(m.entropy_bottleneck, [z_string], z_shape), z_ref)
        params = m.h_s(z_ref)
        H, W = params.shape[-2:]
        pad = KERNEL // 2
        y_pad = torch.zeros(1, m.M, H + 2 * pad, W + 2 * pad)
        mw = m.context.masked_weight()
        cpp = CppDecoder()
        cpp.set_stream(y_strings[0])
        ours = RansDecoder(y_strings[0], m.M * H * W)
        idx = list(range(m.M))
        for h in range(H):
            for w in range(W):
                tables = m._position_tables(y_pad, params, h, w, mw)
                a = cpp.decode_stream(idx, *tables)
                assert ours.decode_stream(idx, *tables) == a
                y_pad[0, :, h + pad, w + pad] = torch.tensor(a, dtype=y_pad.dtype)
        ours.finish()
        assert torch.equal(y_pad[:, :, pad:pad + H, pad:pad + W], y_q)
        # and the ROI model's own decode (now the checked one) gives the same latents
        assert torch.equal(m.decompress_latents(y_strings[0], z_string, z_shape), y_q)
