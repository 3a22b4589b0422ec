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


def test_box_smooth_kernel_sizes_of_both_seeds():
    """51 (the codec's seed) is centred; 50 (the metric's seed) spans [i − 25, i + 24]; both are local means."""
    m = torch.zeros(1, 1, 101, 101)
    m[0, 0, 50, 50] = 1
    for k, (lo, hi) in ((51, (25, 75)), (50, (26, 75))):
        b = S.box_smooth(m, k)[0, 0]
        rows = torch.nonzero(b.sum(1)).flatten()
        assert (int(rows.min()), int(rows.max())) == (lo, hi), k
        assert float(b[50, 50]) == pytest.approx(1 / k**2)
    assert torch.allclose(S.box_smooth(torch.full((1, 1, 30, 40), 0.3), 50), torch.full((1, 1, 30, 40), 0.3))
    with pytest.raises(ValueError, match="kernel"):
        S.box_smooth(m, 0)


class _LeftHalf(torch.nn.Module):
    """A stand-in 'saliency network': logits +6 on the left half of the image, −6 on the right."""

    def forward(self, x):
        w = x.shape[-1]
        col = torch.arange(w, device=x.device, dtype=x.dtype)
        return (12.0 * (col < w / 2).to(x.dtype) - 6.0).view(1, 1, 1, w).expand(x.shape[0], 1, x.shape[-2], w)


@pytest.mark.parametrize("kind", ["torch", "folder"])
def test_user_saliency_reaches_training_compression_roi_psnr_and_roi_mlp(tmp_path, kind):
    """A user's TorchScript saliency network or a folder of precomputed masks, given once in the config,
    is what training, compression, ROI-PSNR (evaluate) and ROI-MLP's RM_2D use."""
    import csv
    import warnings

    from lossarena.benchmark import roi_mlp as R
    from lossarena.codecs.roi import codec as RC
    from lossarena.codecs.roi import train as RT
    from lossarena.codecs.roi.checkpoint import read_checkpoint
    from lossarena.data.images import load_image, save_image

    g = torch.Generator().manual_seed(0)
    data = tmp_path / "train"
    paths = []
    for i in range(2):
        p = data / f"img{i}.png"
        save_image(torch.rand(1, 3, 64, 96, generator=g), p)
        paths.append(p)
    if kind == "torch":
        net = tmp_path / "sal.pt"
        torch.jit.save(torch.jit.script(_LeftHalf()), str(net))
        spec = {"name": "torch", "weights": str(net), "normalize": False}
        mask = torch.zeros(1, 1, 64, 96)
        mask[..., :48] = 1
        mask = torch.sigmoid(12.0 * mask - 6.0)
    else:
        (tmp_path / "masks").mkdir()
        mask = torch.zeros(1, 1, 64, 96)
        mask[..., 10:40, 50:90] = 1
        for p in paths:
            save_image(mask.repeat(1, 3, 1, 1), tmp_path / "masks" / p.name)
        spec = {"name": "folder", "folder": str(tmp_path / "masks")}
        mask = mask.clamp(1e-4, 1 - 1e-4)  # read as Mask_2D through logit/σ
    rm51, rm50 = S.box_smooth(mask, 51), S.box_smooth(mask, 50)

    cfg = {"model": {"N": 8, "M": 8, "protected": 2, "attn_blocks": 1}, "lambdas": [6, 5, 4, 3, 2, 1],
           "patch": 64, "batch": 2, "threads": 1, "saliency": spec, "stage1": {"steps": 2},
           "distortion": {"perceptual_substitute": "ms-ssim:scales=3"}, "data": [str(p) for p in paths]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ck = RT.train_stage(cfg, tmp_path / "out", 1, progress=False, device="cpu")
        src = RT.MaskedPatches(paths, 64, spec)  # the training masks
    assert torch.allclose(src.masks[0], rm51[0], atol=1e-5)
    assert read_checkpoint(ck)["config"]["saliency"] == spec

    codec = RC.RoiCodec(ck)
    x = load_image(paths[0])
    assert torch.allclose(codec.rm2d(x, names=[paths[0].name]), rm51, atol=1e-5)
    # compression sees the same mask as an explicit RM_2D: byte-identical streams
    bs = codec.compress(x, 2.5, name=paths[0].name)
    assert bs.to_bytes() == codec.compress(x, 2.5, rm2d=rm51).to_bytes()
    out = RC.evaluate_roi(ck, [paths[0]], tmp_path / "res.csv", rate_indices=[2.5], progress=False)
    row = next(csv.DictReader(open(out)))
    x_hat = codec.decompress(bs)
    assert float(row["roi_psnr"]) == pytest.approx(float(RC.weighted_psnr(x_hat, x, rm51)[0]), abs=1e-3)
    assert float(row["roi_psnr"]) != pytest.approx(float(row["bg_psnr"]), abs=1e-3)

    ext = R.FeatureExtractor(R.FeatureConfig(lpips="gms", d_loss=False, saliency=spec))
    assert torch.allclose(ext.rm2d(x, [paths[0].name]), rm50, atol=1e-5)
