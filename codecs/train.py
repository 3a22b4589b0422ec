"""Training and fine-tuning one codec: L = λ·D(x̂, x) + R, D from the metric registry.

Runs alone or under ``torchrun --nproc_per_node K`` (DistributedDataParallel; gloo on CPU, nccl on
GPU). The entropy bottleneck's quantiles are trained by the aux loss with their own optimizer; they are
kept out of DDP's reducer and their gradients are all-reduced by hand. Checkpoints are written every
``ckpt_every`` steps and at the end (by rank 0), with the optimizers, every rank's RNG state and the
step, so ``resume=True`` continues exactly (the data order is a function of seed and step; see
:mod:`lossarena.codecs.patches`).
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import torch

from lossarena.errors import InputError

from .model import (
    arch_for_quality,
    build_model,
    main_and_aux_parameters,
    quantile_names,
    read_checkpoint,
    save_checkpoint,
)
from .patches import PatchSource

MSSSIM_WINDOW = 11


def msssim_scales_for(patch: int, max_scales: int = 5) -> int:
    """Largest number of MS-SSIM scales whose coarsest level still holds an 11-px window."""
    s = 1
    while s < max_scales and MSSSIM_WINDOW * 2 ** s <= patch:
        s += 1
    return s


def default_loss_kwargs(loss: str, patch: int) -> dict:
    """Metric options needed at this patch size (recorded in the checkpoint config)."""
    if loss.lower() in ("ms-ssim", "msssim", "ms_ssim") and patch < MSSSIM_WINDOW * 16:
        return {"scales": msssim_scales_for(patch)}
    return {}


def make_loss(loss: str, loss_kwargs: dict | None = None):
    """``(module, kwargs actually used)``; drops a ``scales`` option the metric does not know yet."""
    from lossarena.metrics import get_loss

    kw = dict(loss_kwargs or {})
    try:
        return get_loss(loss, **kw), kw
    except TypeError:
        if "scales" in kw:
            kw.pop("scales")
            return get_loss(loss, **kw), kw
        raise


def bpp_from_likelihoods(likelihoods: dict, num_pixels: int) -> torch.Tensor:
    return sum(torch.log(v).sum() for v in likelihoods.values()) / (-math.log(2) * num_pixels)


class _Dist:
    """Process-group bookkeeping (a no-op when not launched by torchrun)."""

    def __init__(self):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.enabled = self.world > 1
        self.owned = False

    def start(self, device: torch.device):
        if not self.enabled:
            return
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
            self.owned = True

    def stop(self):
        if self.owned:
            import torch.distributed as dist

            dist.barrier()
            dist.destroy_process_group()

    def all_gather(self, obj):
        if not self.enabled:
            return [obj]
        import torch.distributed as dist

        out = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def barrier(self):
        if self.enabled:
            import torch.distributed as dist

            dist.barrier()


def _rng_state(device: torch.device) -> dict:
    st = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        st["cuda"] = torch.cuda.get_rng_state(device)
    return st


def _set_rng_state(st: dict, device: torch.device) -> None:
    torch.set_rng_state(st["torch"])
    if device.type == "cuda" and "cuda" in st:
        torch.cuda.set_rng_state(st["cuda"], device)


def train(
    loss: str = "mse",
    lmbda: float = 0.0130 * 255**2,
    data: str | Path = ".",
    out: str | Path = "codec.pt",
    *,
    init: str | Path | None = None,
    steps: int = 1000,
    patch: int = 256,
    batch: int = 8,
    lr: float = 1e-4,
    aux_lr: float = 1e-3,
    seed: int = 0,
    resume: bool = False,
    quality: int | None = None,
    N: int | None = None,
    M: int | None = None,
    level: str | None = None,
    loss_kwargs: dict | None = None,
    ckpt_every: int = 0,
    clip: float = 1.0,
    progress: bool = True,
    device: str | None = None,
    threads: int | None = None,
) -> Path:
    """Train (``init=None``) or fine-tune (``init=CKPT``) one codec; returns the checkpoint path.

    ``batch`` is per process. ``N, M`` default to CompressAI's zoo values for ``quality`` (3 if neither
    is given), or to the ``init`` checkpoint's architecture.
    """
    from tqdm import tqdm

    out = Path(out)
    old_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    dist_ = _Dist()
    if device is None:
        device = f"cuda:{dist_.local_rank}" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    dist_.start(dev)
    try:
        return _train(dist_, dev, loss, lmbda, data, out, init, steps, patch, batch, lr, aux_lr, seed, resume,
                      quality, N, M, level, loss_kwargs, ckpt_every, clip, progress, tqdm)
    finally:
        dist_.stop()
        torch.set_num_threads(old_threads)


def _train(dist_, dev, loss, lmbda, data, out, init, steps, patch, batch, lr, aux_lr, seed, resume, quality,
           N, M, level, loss_kwargs, ckpt_every, clip, progress, tqdm) -> Path:
    from lossarena.metrics import get_metric

    spec = get_metric(loss)
    if patch % 64 or patch <= 0:
        raise InputError(f"patch must be a positive multiple of 64 (the hyperprior downsamples by 64), got {patch}")
    if loss_kwargs is None:
        loss_kwargs = default_loss_kwargs(spec.name, patch)
    loss_fn, loss_kwargs = make_loss(spec.name, loss_kwargs)
    loss_fn = loss_fn.to(dev)

    init_obj = read_checkpoint(init) if init else None
    resume_obj = read_checkpoint(out) if resume and out.is_file() else None
    if resume_obj is not None:
        rc = resume_obj["config"]
        if rc.get("loss") != spec.name or not math.isclose(float(rc.get("lmbda")), float(lmbda), rel_tol=1e-9):
            raise InputError(f"{out}: cannot resume: it was trained with loss {rc.get('loss')} λ={rc.get('lmbda')}, "
                             f"not {spec.name} λ={lmbda}")
        if "train_state" not in resume_obj:
            raise InputError(f"{out}: cannot resume: the checkpoint has no training state")
    if init_obj is not None:
        arch = init_obj["config"]["architecture"]
        N, M = arch["N"], arch["M"]
    elif resume_obj is not None:
        arch = resume_obj["config"]["architecture"]
        N, M = arch["N"], arch["M"]
    elif N is None or M is None:
        quality = quality or 3
        N, M = arch_for_quality(quality)

    torch.manual_seed(seed)  # identical initial weights on every rank
    model = build_model(N, M)
    if init_obj is not None:
        model.load_state_dict(init_obj["state_dict"])
    if resume_obj is not None:
        model.load_state_dict(resume_obj["state_dict"])
        with torch.no_grad():  # the aux-trained quantiles, not the exact ones written for coding
            params = dict(model.named_parameters())
            for n, q in resume_obj.get("train_state", {}).get("quantiles", {}).items():
                params[n].copy_(q)
    model = model.to(dev).train()

    main_params, aux_params = main_and_aux_parameters(model)
    opt = torch.optim.Adam(main_params, lr=lr)
    aux_opt = torch.optim.Adam(aux_params, lr=aux_lr)
    start = 0
    torch.manual_seed(seed * 1_000_003 + 17 + dist_.rank)  # per-rank quantisation noise
    if resume_obj is not None:
        ts = resume_obj["train_state"]
        if ts.get("world", 1) != dist_.world:
            raise InputError(f"{out}: cannot resume exactly: saved with {ts.get('world')} processes, "
                             f"now {dist_.world}")
        opt.load_state_dict(ts["optimizer"])
        aux_opt.load_state_dict(ts["aux_optimizer"])
        _set_rng_state(ts["rng"][dist_.rank], dev)
        start = int(ts["step"])

    net = model
    if dist_.enabled:
        from torch.nn.parallel import DistributedDataParallel as DDP

        DDP._set_params_and_buffers_to_ignore_for_model(model, quantile_names(model))
        import inspect

        sync = ({"forward_sync_buffers": False} if "forward_sync_buffers" in inspect.signature(DDP).parameters
                else {"broadcast_buffers": False})
        net = DDP(model, device_ids=[dev.index] if dev.type == "cuda" else None, **sync)

    src = PatchSource(data, patch, seed)
    config = {
        "codec": "hyperprior",
        "architecture": {"name": "bmshj2018-hyperprior", "N": int(N), "M": int(M), "quality": quality},
        "loss": spec.name, "loss_kwargs": loss_kwargs, "lmbda": float(lmbda), "level": level,
        "metric": spec.as_dict(), "steps": int(steps), "patch": int(patch), "batch": int(batch),
        "world_size": dist_.world, "lr": float(lr), "aux_lr": float(aux_lr), "seed": int(seed),
        "init": str(init) if init else None, "data": str(data), "clip": clip,
        "rate": "bpp = -sum(log2 likelihoods) / pixels; loss = lmbda * D + bpp",
    }
    if init_obj is not None:
        config["init_config"] = {k: init_obj["config"].get(k) for k in ("loss", "lmbda", "level", "step")}

    def checkpoint(step: int, skipped: int):
        rngs = dist_.all_gather(_rng_state(dev))
        if dist_.rank == 0:
            cfg = dict(config, step=int(step), skipped_steps=int(skipped), finished=step >= steps)
            ts = {"optimizer": opt.state_dict(), "aux_optimizer": aux_opt.state_dict(), "rng": rngs,
                  "step": int(step), "world": dist_.world,
                  "quantiles": {n: p.detach().cpu().clone() for n, p in model.named_parameters()
                                if n.endswith(".quantiles")}}
            save_checkpoint(out, model, cfg, ts)
        dist_.barrier()

    skipped = int(resume_obj["config"].get("skipped_steps", 0)) if resume_obj is not None else 0
    bar = tqdm(range(start, steps), initial=start, total=steps, disable=not progress or dist_.rank != 0,
               desc=f"{spec.name} λ={lmbda:g}", dynamic_ncols=True, leave=False)
    t0 = time.perf_counter()
    for step in bar:
        x = src.batch(step, batch, dist_.rank, dist_.world).to(dev)
        opt.zero_grad(set_to_none=True)
        aux_opt.zero_grad(set_to_none=True)
        res = net(x)
        bpp = bpp_from_likelihoods(res["likelihoods"], x.shape[0] * x.shape[2] * x.shape[3])
        d = loss_fn(res["x_hat"], x)
        total = lmbda * d + bpp
        total.backward()
        norm = torch.nn.utils.clip_grad_norm_(main_params, clip if clip and clip > 0 else float("inf"))
        ok = bool(torch.isfinite(norm))  # identical on every rank (gradients are all-reduced)
        if ok:
            opt.step()
        else:
            skipped += 1
        aux = model.aux_loss()
        aux.backward()
        if dist_.enabled:
            import torch.distributed as dist

            for p in aux_params:
                dist.all_reduce(p.grad)
                p.grad.div_(dist_.world)
        aux_opt.step()
        if dist_.rank == 0 and (step % 5 == 0 or step == steps - 1):
            bar.set_postfix(loss=f"{float(total):.4g}", bpp=f"{float(bpp):.3f}", D=f"{float(d):.4g}",
                            aux=f"{float(aux):.3g}", refresh=False)
        done = step + 1
        if ckpt_every and done % ckpt_every == 0 and done < steps:
            checkpoint(done, skipped)
    bar.close()
    if start < steps or not out.is_file():
        checkpoint(max(start, steps), skipped)
    if dist_.rank == 0 and progress and start < steps:
        dt = time.perf_counter() - t0
        print(f"{out}: {spec.name} λ={lmbda:g} {steps - start} steps in {dt:.1f} s"
              + (f" ({skipped} skipped: non-finite gradient)" if skipped else ""))
    return out
