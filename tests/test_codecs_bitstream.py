"""Real bitstreams: round trip at any size, the container, and clear errors on damaged input."""

from __future__ import annotations

import pytest
import torch
from codecs_helpers import images, session_dir, tiny_checkpoint
from hypothesis import given, settings
from hypothesis import strategies as st
from lossarena.codecs.bitstream import Bitstream, BitstreamError, file_hash
from lossarena.codecs.cli import main as codecs_main
from lossarena.codecs.coder import HyperpriorCodec
from lossarena.data.images import list_images, load_image


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
    back = Bitstream.from_bytes(bs.to_bytes())
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
