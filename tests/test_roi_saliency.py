"""Saliency registry, Mask_2D / RM_2D / RM_latent definitions (ROI codec)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from lossarena.codecs.roi import saliency as S

from lossarena.errors import InputError, MissingWeightsError, UnknownNameError


def _scene(h=96, w=128, seed=0):
    """Smooth grey background with a textured, saturated patch (salient) at a known place."""
    g = torch.Generator().manual_seed(seed)
    x = torch.full((1, 3, h, w), 0.45) + 0.02 * torch.randn(1, 3, h, w, generator=g)
    x[:, :, 30:62, 70:110] = torch.rand(1, 3, 32, 40, generator=g)
    inside = torch.zeros(1, 1, h, w, dtype=torch.bool)
    inside[:, :, 30:62, 70:110] = True
    return x.clamp(0, 1), inside


def test_registry_names_and_unknown():
    assert {"spectral", "fine-grained", "folder", "torch"} <= set(S.SALIENCY.names())
    assert isinstance(S.get_saliency("opencv"), S.SpectralResidualSaliency)
    with pytest.raises(UnknownNameError, match="did you mean 'spectral'"):
        S.get_saliency("spectrall")


@pytest.mark.parametrize("name", ["spectral", "fine-grained"])
def test_opencv_masks_shapes_and_salient_region(name):
    x, inside = _scene()
    m = S.roi_masks(x, name)
    assert m["mask2d"].shape == (1, 1, 96, 128) and m["rm2d"].shape == (1, 1, 96, 128)
    assert m["rm_latent"].shape == (1, 1, 6, 8)
    for k in ("mask2d", "rm2d"):
        assert 0 < float(m[k].min()) and float(m[k].max()) <= 1
    # standardised logits: mean 0, std = gain (2)
    lg = S.get_saliency(name).logits(x)
    assert abs(float(lg.mean())) < 1e-4 and float(lg.std(unbiased=False)) == pytest.approx(2.0, rel=1e-3)
    rm = m["rm2d"]
    assert float(rm[inside].mean()) > float(rm[~inside].mean()) + 0.02


def test_box_smooth_is_normalised_local_mean():
    g = torch.Generator().manual_seed(1)
    m = torch.rand(2, 1, 40, 57, generator=g)
    pad = S.SMOOTH_KERNEL // 2
    ones = torch.ones_like(m)
    ref = F.avg_pool2d(F.pad(m, (pad,) * 4), S.SMOOTH_KERNEL, 1) / F.avg_pool2d(F.pad(ones, (pad,) * 4),
                                                                                 S.SMOOTH_KERNEL, 1)
    assert torch.allclose(S.box_smooth(m), ref, atol=1e-5)
    c = torch.full((1, 1, 30, 70), 0.3)
    assert torch.allclose(S.box_smooth(c), c, atol=1e-6)  # constant stays constant at the borders too
    assert S.rm_latent(torch.rand(1, 1, 64, 100)).shape == (1, 1, 4, 7)


def test_folder_masks_are_mask2d(tmp_path):
    from PIL import Image

    a = np.zeros((48, 64), np.uint8)
    a[10:30, 20:50] = 255
    a[0:5, 0:5] = 128
    Image.fromarray(a).save(tmp_path / "img1.png")
    prov = S.get_saliency("folder", folder=tmp_path)
    x = torch.rand(1, 3, 48, 64)
    m = S.roi_masks(x, prov, names=["some/where/img1.jpg"])["mask2d"]
    assert torch.allclose(m[0, 0], torch.from_numpy(a / 255.0).float().clamp(1e-4, 1 - 1e-4), atol=1e-5)
    with pytest.raises(InputError, match="no mask for image 'other'"):
        prov.logits(x, ["other.png"])
    with pytest.raises(InputError, match="does not exist"):
        S.get_saliency("folder", folder=tmp_path / "nope")


class _TinySal(torch.nn.Module):
    def forward(self, x):
        return F.avg_pool2d(x.mean(1, keepdim=True), 4)


def test_torch_saliency_network(tmp_path):
    with pytest.raises(MissingWeightsError, match="not distributable"):
        S.get_saliency("torch", weights=tmp_path / "gcpanet.pt")
    p = tmp_path / "sal.pt"
    torch.jit.save(torch.jit.trace(_TinySal(), torch.rand(1, 3, 32, 32)), str(p))
    prov = S.get_saliency("gcpanet", weights=p)
    x = torch.rand(2, 3, 40, 48)
    lg = prov.logits(x)
    assert lg.shape == (2, 1, 40, 48)
    assert S.roi_masks(x, prov)["rm2d"].shape == (2, 1, 40, 48)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a model")
    with pytest.raises(InputError, match="TorchScript"):
        S.get_saliency("torch", weights=bad)


def test_user_mask_size_mismatch():
    x = torch.rand(1, 3, 32, 32)
    with pytest.raises(InputError, match="mask size"):
        S.roi_masks(x, mask2d=torch.rand(1, 1, 16, 16))


def test_saliency_cli(tmp_path, capsys):
    from lossarena.data.images import load_image, save_image
    from lossarena.pipeline.cli import main as lossarena_main

    x, _ = _scene()
    save_image(x, tmp_path / "in.png")
    assert lossarena_main(["roi", "saliency", str(tmp_path / "in.png"), str(tmp_path / "rm.png"), "--rm"]) == 0
    assert load_image(tmp_path / "rm.png").shape == (1, 3, 96, 128)
    assert "RM_2D mean" in capsys.readouterr().out
    assert lossarena_main(["roi", "saliency", str(tmp_path / "nope.png"), str(tmp_path / "o.png")]) == 2
