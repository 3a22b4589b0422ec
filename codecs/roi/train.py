"""Training the ROI codec: stage 1 (rate–distortion with ROI/background losses), stage 2 (+ conditional GAN).

Loss per image with rate index ``s`` (a random one of the ``n`` gain pairs per image)::

    L = d_ROI + w_BG · d_BG + λ_s · R      (+ β · L_G in stage 2)

* ``d_ROI = 255² · mean(RM_2D ⊗ (x − x̂)²)`` (Eq. 3; MSE on the 8-bit scale),
* ``d_BG = 1 − SSIM(x̃, x) + λ_p · d_P(x̃, x)`` (Eq. 4, λ_p = 0.5) with the *background composite*
  ``x̃ = RM_2D ⊗ x + (1 − RM_2D) ⊗ x̂`` — the reconstruction with its ROI replaced by the original, so only
  background errors count, weighted by ``1 − RM_2D``; SSIM on luma, ``d_P`` = LPIPS (AlexNet). Without
  the LPIPS backbone training refuses (exit 3) unless a substitute is named (see :mod:`.losses`),
* ``R`` = bits per pixel of ŷ and ẑ from the likelihoods,
* ``λ_s`` weights the **rate** (the seed's λ sets grow as the base rate falls: 120…720 for 0.075 bpp,
  10…90 for 0.3 bpp; that only fits ``D + λ·R`` with D on the 8-bit MSE scale). ``w_BG`` is not given by
  the seed (configurable, default 300, to put ``1 − SSIM`` ≈ 0.1 on the scale of an 8-bit MSE of ~30).
* ``rate_warmup`` (stage 1): λ ramps linearly from 0 over that many steps, so that a small, briefly
  trained model does not collapse to zero rate before its latents carry information (0 = off, the paper).
* Stage 2: HiFiC's non-saturating conditional GAN: ``L_D = −log σ(D(x, ŷ)) − log(1 − σ(D(x̂, ŷ)))``,
  ``L_G = −log σ(D(x̂, ŷ))``, the discriminator conditioned on the ROI latents ``ŷ ⊙ v'`` (detached).

The mask (RM_2D) comes from the configured saliency provider, computed once per training image.
Runs alone or under ``torchrun --nproc_per_node K`` (gloo on CPU, nccl on GPU): every rank draws its own
patches (seeded by seed, step, rank); gradients are averaged with ``all_reduce`` before each step.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from lossarena.errors import InputError

from ..device import resolve_device
from ..distributed import Dist
from .checkpoint import build_model, load_model, read_checkpoint, save_checkpoint
from .config import load_config
from .losses import (
    DEFAULT_SSIM,
    bits_per_image,
    discriminator_gan_loss,
    generator_gan_loss,
    make_bg_losses,
    roi_distortion,
    sample_alpha,
)
from .model import Discriminator
from .saliency import roi_masks, saliency_from_spec

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------ data
class MaskedPatches:
    """Random crops of training images together with their RM_2D (computed once per image)."""

    def __init__(self, paths: list[Path], patch: int, saliency, seed: int = 0, k: int = 51):
        from lossarena.data.images import load_image

        if not paths:
            raise InputError("no training images")
        self.patch, self.seed = int(patch), int(seed)
        prov = saliency_from_spec(saliency)
        self.images, self.masks = [], []
        for p in paths:
            x = load_image(p)
            h, w = x.shape[-2:]
            if min(h, w) < self.patch:
                s = self.patch / min(h, w)
                x = F.interpolate(x, size=(max(self.patch, round(h * s)), max(self.patch, round(w * s))),
                                  mode="bicubic", align_corners=False).clamp(0, 1)
            self.images.append(x[0])
            self.masks.append(roi_masks(x, prov, names=[Path(p).name], k=k)["rm2d"][0])

    def batch(self, step: int, n: int, rank: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, step, rank])
        xs, ms = [], []
        for _ in range(n):
            i = int(rng.integers(len(self.images)))
            x, m = self.images[i], self.masks[i]
            h, w = x.shape[-2:]
            t, left = int(rng.integers(h - self.patch + 1)), int(rng.integers(w - self.patch + 1))
            xc = x[:, t:t + self.patch, left:left + self.patch]
            mc = m[:, t:t + self.patch, left:left + self.patch]
            if rng.random() < 0.5:
                xc, mc = xc.flip(-1), mc.flip(-1)
            xs.append(xc)
            ms.append(mc)
        return torch.stack(xs), torch.stack(ms)


def training_images(data) -> list[Path]:
    from lossarena.data.images import list_images

    if isinstance(data, (list, tuple)):
        return [Path(p) for p in data]
    if data in (None, "kodak24", "demo"):
        from lossarena.data.demo_images import demo_images

        return list(demo_images(24)[0])
    return list_images(data)


# ------------------------------------------------------------------------------------------ distributed
# ------------------------------------------------------------------------------------------ training
LOG_EVERY = 5
LOG_COLUMNS = ("step", "seconds", "loss", "bpp", "d_roi", "d_bg", "aux", "g", "d")


def stage_path(out_dir, stage: int) -> Path:
    """``OUT/roi_stage{stage}.pt``."""
    return Path(out_dir) / f"roi_stage{stage}.pt"


def log_path(out_dir, stage: int) -> Path:
    """``OUT/roi_stage{stage}_log.csv``: the training log (every ``LOG_EVERY`` steps and the last)."""
    return Path(out_dir) / f"roi_stage{stage}_log.csv"


class _CsvLog:
    def __init__(self, path: Path, resume: bool):
        import csv

        path.parent.mkdir(parents=True, exist_ok=True)
        new = not (resume and path.is_file())
        self.f = open(path, "w" if new else "a", newline="")
        self.w = csv.DictWriter(self.f, fieldnames=LOG_COLUMNS)
        if new:
            self.w.writeheader()

    def writerow(self, row: dict) -> None:
        self.w.writerow(row)
        self.f.flush()

    def close(self) -> None:
        self.f.close()


@dataclasses.dataclass
class _Optimisers:
    """Adam for the codec (G), its entropy-bottleneck quantiles (aux) and, in stage 2, the discriminator."""

    main_params: list
    aux_params: list
    opt: torch.optim.Optimizer
    aux: torch.optim.Optimizer
    disc: torch.optim.Optimizer | None

    @classmethod
    def build(cls, model, disc, cfg: dict) -> _Optimisers:
        aux_params = [p for n, p in model.named_parameters() if n.endswith("quantiles")]
        main_params = [p for n, p in model.named_parameters() if not n.endswith("quantiles")]
        d_opt = torch.optim.Adam(disc.parameters(), lr=float(cfg["stage2"]["d_lr"]), betas=(0.5, 0.999)) \
            if disc is not None else None
        return cls(main_params, aux_params, torch.optim.Adam(main_params, lr=float(cfg["lr"])),
                   torch.optim.Adam(aux_params, lr=float(cfg["aux_lr"])), d_opt)

    def state(self) -> dict:
        return {"optimizer": self.opt.state_dict(), "aux_optimizer": self.aux.state_dict(),
                "d_optimizer": self.disc.state_dict() if self.disc is not None else None}

    def load(self, ts: dict) -> None:
        self.opt.load_state_dict(ts["optimizer"])
        self.aux.load_state_dict(ts["aux_optimizer"])
        if self.disc is not None and ts.get("d_optimizer"):
            self.disc.load_state_dict(ts["d_optimizer"])


def _start_models(cfg: dict, out_dir, stage: int, out: Path, resume: bool):
    """``(model, disc, start step, resume checkpoint or None)`` for a stage (fresh, resumed, or from stage 1)."""
    model = build_model(cfg)
    disc = Discriminator(model.M, width=int(cfg["stage2"]["d_width"])) if stage == 2 else None
    resume_obj = read_checkpoint(out) if resume and out.is_file() else None
    if resume_obj is not None:
        if "train_state" not in resume_obj:
            raise InputError(f"{out}: cannot resume: the checkpoint has no training state")
        model, _ = load_model(resume_obj)
        if stage == 2:
            disc = Discriminator(model.M, width=int(resume_obj["discriminator"]["width"]))
            disc.load_state_dict(resume_obj["discriminator"]["state_dict"])
        return model, disc, int(resume_obj["step"]), resume_obj
    if stage == 2:
        init = stage_path(out_dir, 1)
        if not init.is_file():
            raise InputError(f"{init}: stage 2 starts from the stage-1 checkpoint; train stage 1 first")
        model, _ = load_model(init)
    return model, disc, 0, None


def _train_step(model, disc, opts: _Optimisers, bg, x, rm, cfg: dict, *, stage: int, step: int, rng,
                lambdas: torch.Tensor, dist_: Dist) -> dict:
    """One step: G (codec: D + λ·R (+ β·L_G)), then the aux quantiles, then D (stage 2). Returns the losses."""
    batch, patch = x.shape[0], x.shape[-1]
    s = torch.from_numpy(rng.integers(model.n_rates, size=batch)).to(x.device)
    alpha = sample_alpha(rng, batch, cfg.get("alpha_train"), cfg["alpha"]).to(x.device)
    res = model(x, F.avg_pool2d(rm, 16, 16), rate=s, alpha=alpha)
    x_hat = res["x_hat"]
    bpp = bits_per_image(res["likelihoods"]) / (patch * patch)
    dd = roi_distortion(x_hat, x, rm, bg.ssim, bg.perceptual, cfg["distortion"])
    warm = int(cfg.get("rate_warmup") or 0)
    ramp = min(1.0, (step + 1) / warm) if warm and stage == 1 else 1.0  # λ ramps up from 0
    loss = dd["D"] + ramp * (lambdas[s] * bpp).mean()
    g_adv = torch.zeros((), device=x.device)
    if disc is not None:  # generator step: −log σ(D(x̂ | ŷ ⊙ v'))
        g_adv = generator_gan_loss(disc, x_hat, res["y_dec"])
        loss = loss + float(cfg["stage2"]["gan_weight"]) * g_adv
    opts.opt.zero_grad(set_to_none=True)
    loss.backward()
    dist_.average_grads(opts.main_params)
    clip = float(cfg.get("clip") or 0)
    if clip > 0:
        torch.nn.utils.clip_grad_norm_(opts.main_params, clip)
    opts.opt.step()
    opts.aux.zero_grad(set_to_none=True)
    aux = model.aux_loss()
    aux.backward()
    dist_.average_grads(opts.aux_params)
    opts.aux.step()
    d_loss = torch.zeros((), device=x.device)
    if disc is not None:  # then the discriminator step (alternating, after the generator's)
        opts.disc.zero_grad(set_to_none=True)
        d_loss = discriminator_gan_loss(disc, x, x_hat, res["y_dec"])
        d_loss.backward()
        dist_.average_grads(list(disc.parameters()))
        opts.disc.step()
    return {"loss": loss, "bpp": bpp.mean(), "d_roi": dd["d_roi"], "d_bg": dd["d_bg"], "aux": aux,
            "g": g_adv, "d": d_loss}


def train_stage(config, out_dir, stage: int = 1, *, resume: bool = False, data=None, steps: int | None = None,
                progress: bool = True, device: str | None = None) -> Path:
    """Train one stage; writes ``OUT/roi_stage{1,2}.pt`` (and its CSV log) and returns the checkpoint path.

    Parameters
    ----------
    config : dict, str or Path
        Config dict, YAML file or packaged name (see :func:`~.config.load_config`).
    out_dir : str or Path
        Output folder. Stage 2 starts from ``OUT/roi_stage1.pt`` (it must exist) and adds the discriminator.
    stage : {1, 2}
    resume : bool
        Continue from the stage's own checkpoint (optimisers and step included).
    data : str, Path or list, optional
        Training images (overrides the config's ``data``).
    steps : int, optional
        Total steps of the stage (overrides the config).
    progress : bool
        tqdm progress bar.
    device : str, optional
        ``auto|cpu|cuda|cuda:N`` (:func:`lossarena.codecs.device.resolve_device`).

    Raises
    ------
    MissingWeightsError
        The background loss's perceptual metric needs a missing backbone and no substitute is named.
    InputError
        Bad config field, missing stage-1 checkpoint, images that cannot be read.
    """
    from tqdm import tqdm

    cfg = load_config(config)
    # piq's input check calls float() on tensors that require grad: harmless, silenced
    warnings.filterwarnings("ignore", message="Converting a tensor with requires_grad")
    if stage not in (1, 2):
        raise InputError(f"--stage must be 1 or 2, got {stage}")
    if data is not None:
        cfg["data"] = [str(p) for p in data] if isinstance(data, (list, tuple)) else str(data)
    n_steps = int(steps if steps is not None else cfg[f"stage{stage}"]["steps"])
    cfg[f"stage{stage}"] = dict(cfg[f"stage{stage}"], steps=n_steps)  # the checkpoint records what was run
    if cfg.get("require_split"):  # paper configs: a training folder and a disjoint evaluation folder
        from ..dataset import check_disjoint

        if not cfg.get("data") or not cfg.get("eval_data"):
            raise InputError(f"{cfg.get('name', 'roi')}: needs a training folder and a separate evaluation folder "
                             "(--data TRAIN, and eval_data: in the config); see docs/codecs.md")
        check_disjoint(cfg["data"], cfg["eval_data"])
    out = stage_path(out_dir, stage)
    dcfg = cfg["distortion"]  # built first: a missing backbone refuses before any work
    bg = make_bg_losses(dcfg["perceptual"], int(cfg["patch"]), substitute=dcfg.get("perceptual_substitute"),
                        ssim=dcfg.get("ssim") or DEFAULT_SSIM)
    prev_threads = torch.get_num_threads()
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg["threads"]))  # restored on return
    dist_ = Dist()
    dev = resolve_device(device)
    dist_.start(dev)
    try:
        seed = int(cfg["seed"])
        torch.manual_seed(seed)
        model, disc, start, resume_obj = _start_models(cfg, out_dir, stage, out, resume)
        model = model.to(dev).train()
        if disc is not None:
            disc = disc.to(dev).train()
        opts = _Optimisers.build(model, disc, cfg)
        if resume_obj is not None:
            opts.load(resume_obj["train_state"])
        torch.manual_seed(seed * 1_000_003 + 31 * stage + dist_.rank + start)

        patch = int(cfg["patch"])
        src = MaskedPatches(training_images(cfg["data"]), patch, cfg["saliency"], seed,
                            k=int(cfg.get("smooth_kernel") or 51))
        bg = bg.to(dev)
        log.info("roi stage %d on %s: d_BG = %s + %g * %s%s", stage, dev, bg.ssim_name, float(dcfg["lambda_p"]),
                 bg.perceptual_name, " (named substitute)" if bg.substituted else "")
        lambdas = torch.tensor([float(v) for v in cfg["lambdas"]], device=dev)

        def save(step):
            if dist_.rank == 0:
                save_checkpoint(out, model, cfg, stage=stage, step=step, disc=disc,
                                train_state={**opts.state(), "world": dist_.world},
                                extra={**bg.record(dcfg["perceptual"]), "gan": "non-saturating, HiFiC-style"
                                       if stage == 2 else None, "finished": step >= n_steps})
            dist_.barrier()

        csv_log = _CsvLog(log_path(out_dir, stage), resume=start > 0) if dist_.rank == 0 else None
        bar = tqdm(range(start, n_steps), initial=start, total=n_steps, desc=f"roi stage {stage}",
                   disable=not progress or dist_.rank != 0, dynamic_ncols=True, leave=False)
        t0 = time.perf_counter()
        every = int(cfg.get("ckpt_every") or 0)
        for step in bar:
            x, rm = src.batch(step, int(cfg["batch"]), dist_.rank)
            rng = np.random.default_rng([seed, step, dist_.rank, 99])
            post = _train_step(model, disc, opts, bg, x.to(dev), rm.to(dev), cfg, stage=stage, step=step,
                               rng=rng, lambdas=lambdas, dist_=dist_)
            if step % LOG_EVERY == 0 or step == n_steps - 1:
                vals = {k: float(v.detach()) for k, v in post.items()}
                bar.set_postfix({k: f"{v:.4g}" for k, v in vals.items()}, refresh=False)
                if csv_log is not None:
                    csv_log.writerow({"step": step, "seconds": round(time.perf_counter() - t0, 3), **vals})
            if every and (step + 1) % every == 0 and step + 1 < n_steps:
                save(step + 1)
        bar.close()
        if csv_log is not None:
            csv_log.close()
        if start < n_steps or not out.is_file():
            save(max(start, n_steps))
        if dist_.rank == 0 and start < n_steps:
            log.info("%s: stage %d, %d steps in %.1f s", out, stage, n_steps - start, time.perf_counter() - t0)
        return out
    finally:
        dist_.stop()
        torch.set_num_threads(prev_threads)


def train_roi(config, out_dir, *, stages=(1, 2), data=None, resume: bool = False, progress: bool = True,
              steps: dict | None = None, device: str | None = None) -> Path:
    """Train stage 1 then stage 2 (for the demo); returns the final checkpoint (``OUT/roi.pt`` copy)."""
    import shutil

    out_dir = Path(out_dir)
    last = None
    dist_ = Dist()  # one process group for both stages (re-initialising one under torchrun hangs)
    dev = resolve_device(device)
    dist_.start(dev)
    try:
        for st in stages:
            last = train_stage(config, out_dir, st, resume=resume, data=data, progress=progress,
                               steps=(steps or {}).get(st), device=str(dev))
        final = out_dir / "roi.pt"
        if dist_.rank == 0:
            shutil.copyfile(last, final)
        dist_.barrier()
    finally:
        dist_.stop()
    return final


