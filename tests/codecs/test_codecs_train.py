"""Training: deterministic patches, self-describing checkpoints, exact resume, DDP on 2 CPU processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from codecs_helpers import TINY, images, session_dir, tiny_checkpoint
from lossarena.codecs.model import load_checkpoint, read_checkpoint
from lossarena.codecs.patches import PatchSource
from lossarena.codecs.train import default_loss_kwargs, msssim_scales_for, train

from lossarena.errors import InputError


def test_patches_are_deterministic_and_sharded():
    a = PatchSource(images(), 32, seed=3)
    b = PatchSource(images(), 32, seed=3)
    assert torch.equal(a.batch(5, 4), b.batch(5, 4))
    assert not torch.equal(a.batch(5, 4), PatchSource(images(), 32, seed=4).batch(5, 4))
    full = a.batch(2, 4, rank=0, world=1)
    halves = torch.cat([a.batch(1, 2, rank=0, world=2)[:0], a.batch(2, 2, rank=0, world=2),
                        a.batch(2, 2, rank=1, world=2)])
    assert torch.equal(full, halves)  # two ranks of 2 see exactly the global batch of 4, split
    x = a.batch(0, 3)
    assert x.shape == (3, 3, 32, 32) and 0 <= float(x.min()) and float(x.max()) <= 1
    # every image is visited once per epoch (DistributedSampler-like permutation)
    idx = {int(a._perm(0)[k]) for k in range(len(a))}
    assert idx == set(range(len(a)))


def test_msssim_scales_for_small_patches():
    assert msssim_scales_for(256) == 5
    assert msssim_scales_for(176) == 5
    assert msssim_scales_for(128) == 4
    assert msssim_scales_for(64) == 3
    assert default_loss_kwargs("ms-ssim", 64) == {"scales": 3}
    assert default_loss_kwargs("ms-ssim", 256) == {}
    assert default_loss_kwargs("mse", 64) == {}


def test_checkpoint_is_self_describing():
    model, cfg = load_checkpoint(tiny_checkpoint())
    assert cfg["loss"] == "mse" and cfg["lmbda"] == 300.0 and cfg["step"] == 30 and cfg["finished"]
    assert cfg["architecture"] == {"name": "bmshj2018-hyperprior", "N": TINY["N"], "M": TINY["M"], "quality": None}
    assert cfg["metric"]["name"] == "mse" and cfg["metric"]["lower_better"] is True
    assert len(bytes.fromhex(cfg["ckpt_hash"])) == 16
    assert not model.training
    obj = read_checkpoint(tiny_checkpoint())
    assert {"optimizer", "aux_optimizer", "rng", "step"} <= set(obj["train_state"])
    bad = session_dir() / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="bad.pt"):
        load_checkpoint(bad)


def test_resume_continues_exactly():
    d = session_dir() / "resume"
    kw = dict(steps=6, lr=1e-3, progress=False, threads=1, seed=1, **TINY)
    straight = train(loss="mse", lmbda=200.0, data=images(), out=d / "straight.pt", **kw)
    kw["steps"] = 3
    train(loss="mse", lmbda=200.0, data=images(), out=d / "split.pt", **kw)
    kw["steps"] = 6
    split = train(loss="mse", lmbda=200.0, data=images(), out=d / "split.pt", resume=True, **kw)
    a, b = read_checkpoint(straight), read_checkpoint(split)
    assert a["config"]["step"] == b["config"]["step"] == 6
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k
    with pytest.raises(InputError, match="cannot resume"):
        train(loss="mse", lmbda=999.0, data=images(), out=d / "split.pt", resume=True, **kw)


def test_finetune_from_init_records_base():
    d = session_dir() / "ft"
    out = train(loss="psnr", lmbda=0.3, data=images(), out=d / "ft.pt", init=tiny_checkpoint(), steps=2, lr=1e-5, progress=False,
                threads=1, patch=64, batch=2)
    cfg = read_checkpoint(out)["config"]
    assert cfg["init_config"]["loss"] == "mse" and cfg["loss"] == "psnr"
    assert cfg["architecture"]["N"] == TINY["N"]  # taken from the base


DDP_SCRIPT = r"""
import os, sys, torch
torch.set_num_threads(1)
import lossarena.codecs.train as T
captured = {}
real_build = T.build_model
def build(N, M):
    captured["model"] = real_build(N, M)
    return captured["model"]
T.build_model = build
T.train(loss="mse", lmbda=300.0, data=sys.argv[1], out=sys.argv[2], steps=3, patch=64, batch=2, N=16, M=24, lr=1e-3, progress=False)
# every rank dumps its final in-memory weights, to compare
torch.save({k: v.detach().cpu() for k, v in captured["model"].state_dict().items()},
           sys.argv[2] + f".rank{os.environ['RANK']}")
"""


@pytest.mark.slow
def test_ddp_two_cpu_processes_end_identical(tmp_path):
    """torchrun with 2 gloo processes: rank 0's checkpoint equals every rank's weights."""
    script = tmp_path / "ddp_train.py"
    script.write_text(DDP_SCRIPT)
    ckpt = tmp_path / "ddp.pt"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(script), str(images()), str(ckpt)]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    w0 = torch.load(f"{ckpt}.rank0", weights_only=True)
    w1 = torch.load(f"{ckpt}.rank1", weights_only=True)
    init = read_checkpoint(ckpt)
    assert init["config"]["world_size"] == 2 and init["config"]["step"] == 3
    for k in w0:  # every parameter and buffer, quantiles (all-reduced by hand) included
        assert torch.equal(w0[k], w1[k]), k
    # coder tables and the exact (bisected) quantiles are rebuilt by update() when saving; the
    # aux-trained quantiles are kept in train_state
    tables = ("_offset", "_quantized_cdf", "_cdf_length", "scale_table", "quantiles")
    trained = [k for k in w0 if not k.endswith(tables)]
    for k in trained:
        assert torch.equal(w0[k], init["state_dict"][k]), k
    assert torch.equal(w0["entropy_bottleneck.quantiles"], init["train_state"]["quantiles"]["entropy_bottleneck.quantiles"])
    # and training moved the weights away from the shared initialisation
    torch.manual_seed(0)
    from lossarena.codecs.model import build_model

    fresh = build_model(16, 24).state_dict()
    assert any(not torch.equal(fresh[k], w0[k]) for k in trained)
    assert len(init["train_state"]["rng"]) == 2
