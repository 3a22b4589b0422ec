"""Training and fine-tuning one codec: L = λ·D(x̂, x) + R, D from the metric registry.

``train(TrainConfig(...))`` (or ``train(loss=..., lmbda=..., data=..., out=...)``). Runs alone or under
``torchrun --nproc_per_node K`` (DistributedDataParallel; gloo on CPU, nccl on GPU; every rank takes
``cuda:LOCAL_RANK``). The entropy bottleneck's quantiles are trained by the aux loss with their own
optimizer; they are kept out of DDP's reducer and their gradients are all-reduced by hand.

The steady-state step has no host↔device synchronisation: batches arrive as pinned uint8 tensors from
a DataLoader (:mod:`lossarena.codecs.dataset`) and are copied ``non_blocking``; a step with a
non-finite gradient norm is skipped *on the device* (fused Adam's ``found_inf``); the loss, bpp,
distortion and aux loss are summed on the device and read back only every ``log_every`` steps, when a
row goes to ``<stem>.log.csv`` (columns :data:`LOG_COLUMNS`).

Speed options: ``bf16`` autocast for the analysis/synthesis transforms (the entropy models, the
likelihoods and the metric stay in float32), ``channels_last``, ``cudnn_benchmark`` (CUDA), ``compile``.

Recipe: ``schedule`` none|plateau|step|cosine (``plateau`` = CompressAI's ReduceLROnPlateau on the
validation loss, or on the logged training loss without ``val``), ``val`` (a held-out folder or cache,
evaluated every ``val_every`` steps; the best model is kept as ``<stem>.best.pt``), ``early_stop``
(validations without improvement). Checkpoints (every ``ckpt_every`` steps and at the end, by rank 0)
hold the optimizers, scheduler, every rank's RNG state and the step, so ``resume=True`` continues
exactly (the data order is a function of seed and step).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import logging
import math
import time
from pathlib import Path

import torch

from lossarena.errors import InputError

from .distributed import Dist
from .interface import bpp_from_likelihoods
from .model import (
    arch_for_quality,
    build_model,
    main_and_aux_parameters,
    quantile_names,
    read_checkpoint,
    save_checkpoint,
)

log = logging.getLogger(__name__)

MSSSIM_WINDOW = 11
SCHEDULES = ("none", "plateau", "step", "cosine")
LOG_COLUMNS = ["step", "loss", "bpp", "distortion", "lr", "aux", "skipped", "seconds",
               "val_loss", "val_bpp", "val_distortion"]

__all__ = ["TrainConfig", "train", "bpp_from_likelihoods", "LOG_COLUMNS", "make_loss", "default_loss_kwargs"]


@dataclasses.dataclass
class TrainConfig:
    """Everything one training run needs (recorded in the checkpoint).

    Parameters
    ----------
    loss : str
        Registry metric used as D (``lossarena metrics list``); lower-is-better via ``get_loss``.
    lmbda : float
        λ in ``L = λ·D + bpp``.
    data : str or Path
        Training images: a folder or a cache from ``codecs prepare-data``.
    out : str or Path
        Checkpoint to write (``<stem>.log.csv`` and ``<stem>.best.pt`` beside it).
    init : str, Path or None
        Checkpoint to fine-tune from (its architecture is used).
    steps, patch, batch : int
        Optimiser steps, square patch side (multiple of 64), patches per process.
    lr, aux_lr : float
        Adam learning rates of the main and aux (quantile) optimisers.
    device : str
        ``auto|cpu|cuda|cuda:N`` (:func:`~lossarena.codecs.device.resolve_device`).
    workers, prefetch : int or None
        DataLoader workers per process (None: :func:`~lossarena.codecs.dataset.default_workers`) and
        batches prefetched per worker.
    log_every : int
        Steps between rows of ``<stem>.log.csv`` (the only host syncs of training).
    bf16, channels_last, cudnn_benchmark, compile : bool
        GPU speed options (see the module docstring); ``compile_backend`` is passed to ``torch.compile``.
    schedule : str
        ``none``, ``plateau`` (factor ``lr_factor``, patience ``lr_patience`` evaluations), ``step``
        (×``lr_factor`` every ``lr_step`` steps) or ``cosine`` (to ``min_lr`` at ``steps``).
    val : str, Path or None
        Held-out images (folder or cache), center-cropped to ``val_crop`` px, evaluated every
        ``val_every`` steps (at most ``val_images`` of them).
    early_stop : int
        Stop after this many validations without improvement (0: never).
    """

    loss: str = "mse"
    lmbda: float = 0.0130 * 255**2
    data: str | Path = "."
    out: str | Path = "codec.pt"
    init: str | Path | None = None
    steps: int = 1000
    patch: int = 256
    batch: int = 8
    lr: float = 1e-4
    aux_lr: float = 1e-3
    seed: int = 0
    resume: bool = False
    quality: int | None = None
    N: int | None = None
    M: int | None = None
    level: str | None = None
    loss_kwargs: dict | None = None
    ckpt_every: int = 0
    clip: float = 1.0
    progress: bool = True
    device: str = "auto"
    threads: int | None = None
    workers: int | None = None
    prefetch: int = 4
    log_every: int = 50
    bf16: bool = False
    channels_last: bool = False
    cudnn_benchmark: bool = True
    compile: bool = False
    compile_backend: str = "inductor"
    schedule: str = "none"
    lr_factor: float = 0.5
    lr_patience: int = 5
    lr_step: int = 0
    min_lr: float = 0.0
    val: str | Path | None = None
    val_every: int = 1000
    val_images: int = 64
    val_crop: int = 512
    early_stop: int = 0

    def check(self) -> None:
        """Raise InputError naming the field for an impossible setting."""
        if self.patch % 64 or self.patch <= 0:
            raise InputError(f"patch must be a positive multiple of 64 (the hyperprior downsamples by 64), "
                             f"got {self.patch}")
        for k in ("steps", "batch", "log_every", "val_every", "prefetch"):
            if int(getattr(self, k)) < 1:
                raise InputError(f"{k} must be >= 1, got {getattr(self, k)}")
        if self.schedule not in SCHEDULES:
            raise InputError(f"schedule: expected one of {', '.join(SCHEDULES)}, got '{self.schedule}'")
        if self.workers is not None and self.workers < 0:
            raise InputError(f"workers must be >= 0, got {self.workers}")
        if not (self.lmbda > 0 and math.isfinite(self.lmbda)):
            raise InputError(f"lmbda must be a positive number, got {self.lmbda}")


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


def _rng_state(device: torch.device) -> dict:
    st = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        st["cuda"] = torch.cuda.get_rng_state(device)
    return st


def _set_rng_state(st: dict, device: torch.device) -> None:
    torch.set_rng_state(st["torch"])
    if device.type == "cuda" and "cuda" in st:
        torch.cuda.set_rng_state(st["cuda"], device)


class TrainNet(torch.nn.Module):
    """The ScaleHyperprior forward with bf16 autocast around the transforms only.

    ``g_a``, ``h_a``, ``h_s``, ``g_s`` run under ``torch.autocast(bfloat16)`` when ``bf16``; the entropy
    bottleneck, the Gaussian conditional (likelihoods) run in float32, and ``x_hat`` is returned in
    float32 (the metric sees float32).
    """

    def __init__(self, model, bf16: bool = False):
        super().__init__()
        self.model = model
        self.bf16 = bf16

    def _ac(self, x):
        if not self.bf16:
            return contextlib.nullcontext()
        return torch.autocast(device_type=x.device.type, dtype=torch.bfloat16)

    def forward(self, x):
        m = self.model
        with self._ac(x):
            y = m.g_a(x)
            z = m.h_a(torch.abs(y))
        z_hat, z_lik = m.entropy_bottleneck(z.float())
        with self._ac(x):
            scales = m.h_s(z_hat)
        y_hat, y_lik = m.gaussian_conditional(y.float(), scales.float())
        with self._ac(x):
            x_hat = m.g_s(y_hat)
        return {"x_hat": x_hat.float(), "likelihoods": {"y": y_lik, "z": z_lik}}


def train(config: TrainConfig | None = None, /, **fields) -> Path:
    """Train (``init=None``) or fine-tune (``init=CKPT``) one codec; returns the checkpoint path.

    Parameters
    ----------
    config : TrainConfig, optional
        The run's settings; keyword ``fields`` override (or replace) it.

    Returns
    -------
    Path
        The checkpoint (written atomically by rank 0).

    Raises
    ------
    InputError
        Bad settings, unreadable data, a resume that does not match the checkpoint, CUDA requested
        where there is none.
    """
    cfg = dataclasses.replace(config, **fields) if config is not None else TrainConfig(**fields)
    cfg.check()
    from .device import resolve_device

    old_threads = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    dist_ = Dist()
    dev = resolve_device(cfg.device)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
        torch.backends.cudnn.benchmark = bool(cfg.cudnn_benchmark)
    dist_.start(dev)
    try:
        return _Trainer(cfg, dist_, dev).run()
    finally:
        dist_.stop()
        torch.set_num_threads(old_threads)


class _Trainer:
    """One run, split into setup / step / log / validate / checkpoint."""

    def __init__(self, cfg: TrainConfig, dist_: Dist, dev: torch.device):
        self.cfg, self.dist, self.dev = cfg, dist_, dev
        self.out = Path(cfg.out)
        self.log_path = self.out.with_name(self.out.stem + ".log.csv")
        self.best_path = self.out.with_name(self.out.stem + ".best.pt")

    # ----------------------------------------------------------------------------------- setup
    def _load(self):
        from lossarena.metrics import get_metric

        cfg = self.cfg
        self.spec = get_metric(cfg.loss)
        kw = cfg.loss_kwargs if cfg.loss_kwargs is not None else default_loss_kwargs(self.spec.name, cfg.patch)
        loss_fn, self.loss_kwargs = make_loss(self.spec.name, kw)
        self.loss_fn = loss_fn.to(self.dev)
        self.init_obj = read_checkpoint(cfg.init) if cfg.init else None
        self.resume_obj = read_checkpoint(self.out) if cfg.resume and self.out.is_file() else None
        ro = self.resume_obj
        if ro is not None:
            rc = ro["config"]
            if rc.get("loss") != self.spec.name or not math.isclose(float(rc.get("lmbda")), float(cfg.lmbda),
                                                                    rel_tol=1e-9):
                raise InputError(f"{self.out}: cannot resume: it was trained with loss {rc.get('loss')} "
                                 f"λ={rc.get('lmbda')}, not {self.spec.name} λ={cfg.lmbda}")
            if "train_state" not in ro:
                raise InputError(f"{self.out}: cannot resume: the checkpoint has no training state")
        N, M, quality = cfg.N, cfg.M, cfg.quality
        src = self.init_obj or ro
        if src is not None:
            arch = src["config"]["architecture"]
            N, M = arch["N"], arch["M"]
        elif N is None or M is None:
            quality = quality or 3
            N, M = arch_for_quality(quality)
        self.N, self.M, self.quality = int(N), int(M), quality

    def _build(self):
        cfg, dev = self.cfg, self.dev
        torch.manual_seed(cfg.seed)  # identical initial weights on every rank
        model = build_model(self.N, self.M)
        if self.init_obj is not None:
            model.load_state_dict(self.init_obj["state_dict"])
        if self.resume_obj is not None:
            model.load_state_dict(self.resume_obj["state_dict"])
            with torch.no_grad():  # the aux-trained quantiles, not the exact ones written for coding
                params = dict(model.named_parameters())
                for n, q in self.resume_obj.get("train_state", {}).get("quantiles", {}).items():
                    params[n].copy_(q)
        model = model.to(dev).train()
        if cfg.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        self.main_params, self.aux_params = main_and_aux_parameters(model)
        self.opt = torch.optim.Adam(self.main_params, lr=cfg.lr, fused=True)
        self.aux_opt = torch.optim.Adam(self.aux_params, lr=cfg.aux_lr, fused=True)
        self.sched = self._scheduler()
        self.start, self.skipped_before = 0, 0
        self.best, self.bad_vals = math.inf, 0
        torch.manual_seed(cfg.seed * 1_000_003 + 17 + self.dist.rank)  # per-rank quantisation noise
        if self.resume_obj is not None:
            ts = self.resume_obj["train_state"]
            if ts.get("world", 1) != self.dist.world:
                raise InputError(f"{self.out}: cannot resume exactly: saved with {ts.get('world')} processes, "
                                 f"now {self.dist.world}")
            self.opt.load_state_dict(ts["optimizer"])
            self.aux_opt.load_state_dict(ts["aux_optimizer"])
            if self.sched is not None and ts.get("scheduler") is not None:
                self.sched.load_state_dict(ts["scheduler"])
            self.best = float(ts.get("best_val", math.inf))
            self.bad_vals = int(ts.get("bad_vals", 0))
            _set_rng_state(ts["rng"][self.dist.rank], dev)
            self.start = int(ts["step"])
            self.skipped_before = int(self.resume_obj["config"].get("skipped_steps", 0))
        net = TrainNet(model, cfg.bf16)
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            DDP._set_params_and_buffers_to_ignore_for_model(net, [f"model.{n}" for n in quantile_names(model)])
            import inspect

            sync = ({"forward_sync_buffers": False} if "forward_sync_buffers" in inspect.signature(DDP).parameters
                    else {"broadcast_buffers": False})
            net = DDP(net, device_ids=[dev.index] if dev.type == "cuda" else None, **sync)
        if cfg.compile:
            net = torch.compile(net, backend=cfg.compile_backend)
        self.net = net

    def _scheduler(self):
        cfg = self.cfg
        if cfg.schedule == "plateau":
            return torch.optim.lr_scheduler.ReduceLROnPlateau(self.opt, factor=cfg.lr_factor,
                                                              patience=cfg.lr_patience, min_lr=cfg.min_lr)
        if cfg.schedule == "step":
            return torch.optim.lr_scheduler.StepLR(self.opt, step_size=cfg.lr_step or max(1, cfg.steps // 3),
                                                   gamma=cfg.lr_factor)
        if cfg.schedule == "cosine":
            return torch.optim.lr_scheduler.CosineAnnealingLR(self.opt, T_max=cfg.steps, eta_min=cfg.min_lr)
        return None

    def _config(self) -> dict:
        cfg = self.cfg
        c = {
            "codec": "hyperprior",
            "architecture": {"name": "bmshj2018-hyperprior", "N": self.N, "M": self.M, "quality": self.quality},
            "loss": self.spec.name, "loss_kwargs": self.loss_kwargs, "lmbda": float(cfg.lmbda), "level": cfg.level,
            "metric": self.spec.as_dict(), "steps": int(cfg.steps), "patch": int(cfg.patch),
            "batch": int(cfg.batch), "world_size": self.dist.world, "lr": float(cfg.lr),
            "aux_lr": float(cfg.aux_lr), "seed": int(cfg.seed), "init": str(cfg.init) if cfg.init else None,
            "data": str(cfg.data), "clip": cfg.clip, "schedule": cfg.schedule, "bf16": cfg.bf16,
            "val": str(cfg.val) if cfg.val else None,
            "rate": "bpp = -sum(log2 likelihoods) / pixels; loss = lmbda * D + bpp",
        }
        if self.init_obj is not None:
            c["init_config"] = {k: self.init_obj["config"].get(k) for k in ("loss", "lmbda", "level", "step")}
        return c

    # ------------------------------------------------------------------------------------ parts
    def checkpoint(self, step: int, skipped: int, *, finished: bool, path: Path | None = None, **extra):
        rngs = self.dist.all_gather(_rng_state(self.dev))
        if self.dist.rank == 0:
            cfg = dict(self.config, step=int(step), skipped_steps=int(skipped), finished=finished, **extra)
            ts = {"optimizer": self.opt.state_dict(), "aux_optimizer": self.aux_opt.state_dict(), "rng": rngs,
                  "step": int(step), "world": self.dist.world,
                  "scheduler": self.sched.state_dict() if self.sched is not None else None,
                  "best_val": self.best, "bad_vals": self.bad_vals,
                  "quantiles": {n: p.detach().cpu().clone() for n, p in self.model.named_parameters()
                                if n.endswith(".quantiles")}}
            save_checkpoint(path or self.out, self.model, cfg, ts)
        self.dist.barrier()

    def _open_log(self):
        """Keep rows up to the resumed step (later ones were not checkpointed), then append."""
        if self.dist.rank != 0:
            return None
        rows = []
        if self.start > 0 and self.log_path.is_file():
            with open(self.log_path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if r.get("step", "").isdigit() and int(r["step"]) <= self.start]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        f = open(self.log_path, "w", newline="")
        w = csv.DictWriter(f, fieldnames=LOG_COLUMNS)
        w.writeheader()
        w.writerows({k: r.get(k, "") for k in LOG_COLUMNS} for r in rows)
        f.flush()
        return f, w

    @torch.no_grad()
    def validate(self) -> dict:
        """Mean loss / bpp / distortion over the held-out images (center crops, eval mode)."""
        from .interface import pad_to

        cfg = self.cfg
        self.model.eval()
        tot = torch.zeros(3, device=self.dev)
        n = len(self.val_items)
        for a in self.val_items:
            x = a.to(self.dev, non_blocking=True).float().div_(255).unsqueeze(0)
            h, w = x.shape[-2:]
            res = self.model(pad_to(x, 64))
            bpp = bpp_from_likelihoods(res["likelihoods"], h * w)
            d = self.loss_fn(res["x_hat"][..., :h, :w].clamp(0, 1), x).float().mean()
            tot += torch.stack([cfg.lmbda * d + bpp, bpp, d])
        self.model.train()
        if self.dist.enabled:
            import torch.distributed as dist

            dist.all_reduce(tot)
            tot /= self.dist.world
        v = (tot / max(1, n)).tolist()
        return {"val_loss": v[0], "val_bpp": v[1], "val_distortion": v[2]}

    def _val_items(self):
        """Center crops (side ``val_crop``, multiple of 64 where possible) of the held-out set as uint8."""
        from .dataset import ImageStore

        store = ImageStore(self.cfg.val)
        items = []
        for i in range(min(len(store), self.cfg.val_images)):
            a = store.image(i)
            h, w = a.shape[:2]
            ch, cw = min(h, self.cfg.val_crop), min(w, self.cfg.val_crop)
            ch, cw = (ch // 64 * 64 or ch), (cw // 64 * 64 or cw)
            y, x = (h - ch) // 2, (w - cw) // 2
            items.append(torch.from_numpy(a[y:y + ch, x:x + cw].transpose(2, 0, 1).copy()))
        return items

    # -------------------------------------------------------------------------------------- run
    def run(self) -> Path:
        from tqdm import tqdm

        from .dataset import default_workers, make_loader

        cfg, dev, dist_ = self.cfg, self.dev, self.dist
        self.setup()
        self.val_items = self._val_items() if cfg.val else []
        workers = cfg.workers if cfg.workers is not None else default_workers(dev)
        loader = make_loader(cfg.data, cfg.patch, cfg.seed, start=self.start, steps=cfg.steps, batch=cfg.batch,
                             rank=dist_.rank, world=dist_.world, workers=workers, prefetch=cfg.prefetch,
                             pin_memory=dev.type == "cuda")
        logf = self._open_log() if self.start < cfg.steps else None
        sums = torch.zeros(5, device=dev)  # loss, bpp, D, aux, skipped since the last log row
        skipped_total = torch.zeros((), device=dev)
        window = torch.zeros((), device=dev)  # training loss summed over val_every steps (plateau without val)
        logged_steps, last_log = 0, time.perf_counter()
        bar = tqdm(total=cfg.steps, initial=self.start, disable=not cfg.progress or dist_.rank != 0,
                   desc=f"{self.spec.name} λ={cfg.lmbda:g}", dynamic_ncols=True, leave=False)
        t0, step, stopped = time.perf_counter(), self.start, None
        for step, xb in enumerate(loader, start=self.start):
            stats = self.step(xb)
            sums += stats
            window += stats[0]
            found_inf = stats[4]
            skipped_total += found_inf
            logged_steps += 1
            done = step + 1
            if self.sched is not None and cfg.schedule != "plateau":
                self.sched.step()
            bar.update(1)
            is_log = done % cfg.log_every == 0 or done == cfg.steps
            is_val = bool(self.val_items) and (done % cfg.val_every == 0 or done == cfg.steps)
            if self.sched is not None and cfg.schedule == "plateau" and not self.val_items \
                    and done % cfg.val_every == 0:
                self.sched.step(float(window) / cfg.val_every)  # a host sync every val_every steps
                window.zero_()
            if is_log or is_val:
                row = {"step": done, "lr": self.opt.param_groups[0]["lr"]}
                if is_log:
                    row.update(self._log_row(sums, logged_steps, time.perf_counter() - last_log, bar))
                    sums.zero_()
                    logged_steps, last_log = 0, time.perf_counter()
                if is_val:
                    row.update(self.validate())
                    stopped = self._after_validation(row["val_loss"], done)
                if logf is not None:
                    logf[1].writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
                    logf[0].flush()
            if stopped is not None:
                break
            if cfg.ckpt_every and done % cfg.ckpt_every == 0 and done < cfg.steps:
                self.checkpoint(done, self.skipped_before + int(skipped_total), finished=False)
        bar.close()
        end = cfg.steps if stopped is None else stopped
        skipped = self.skipped_before + int(skipped_total)
        if self.start < end or not self.out.is_file():
            extra = {"stopped_early": stopped} if stopped is not None else {}
            self.checkpoint(max(self.start, end), skipped, finished=True, **extra)
        if logf is not None:
            logf[0].close()
        if dist_.rank == 0 and self.start < end:
            log.info("%s: %s λ=%g %d steps in %.1f s%s", self.out, self.spec.name, cfg.lmbda, end - self.start,
                     time.perf_counter() - t0, f" ({skipped} skipped: non-finite gradient)" if skipped else "")
        return self.out

    def step(self, xb: torch.Tensor) -> torch.Tensor:
        """One optimisation step on a uint8 (or [0, 1] float) batch; no host sync.

        Returns a 5-vector on the device: loss, bpp, distortion, aux loss, 1.0 if the step was skipped
        (non-finite gradient norm; identical on every rank since gradients are all-reduced).
        """
        cfg, dev = self.cfg, self.dev
        x = xb.to(dev, non_blocking=True)
        x = (x.float().div_(255.0) if x.dtype == torch.uint8 else x.float())
        if cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        self.opt.zero_grad(set_to_none=True)
        self.aux_opt.zero_grad(set_to_none=True)
        res = self.net(x)
        bpp = bpp_from_likelihoods(res["likelihoods"], x.shape[0] * x.shape[2] * x.shape[3])
        d = self.loss_fn(res["x_hat"], x).float().mean()
        total = float(cfg.lmbda) * d + bpp
        total.backward()
        clip = cfg.clip if cfg.clip and cfg.clip > 0 else float("inf")
        norm = torch.nn.utils.clip_grad_norm_(self.main_params, clip)
        found_inf = (~torch.isfinite(norm)).float()
        self.opt.found_inf = found_inf  # fused Adam skips the update on the device when it is 1
        self.opt.step()
        aux = self.model.aux_loss()
        aux.backward()
        if self.dist.enabled:
            import torch.distributed as dist

            for p in self.aux_params:
                dist.all_reduce(p.grad)
                p.grad.div_(self.dist.world)
        self.aux_opt.step()
        return torch.stack([total.detach().float(), bpp.detach().float(), d.detach(), aux.detach().float(),
                            found_inf])

    def setup(self) -> _Trainer:
        """Load checkpoints, build model/optimisers/scheduler (what :meth:`run` does before the loop)."""
        self._load()
        self._build()
        self.config = self._config()
        return self

    def _log_row(self, sums: torch.Tensor, n: int, seconds: float, bar) -> dict:
        v = (sums / max(1, n)).tolist()  # the one host sync per log row
        row = {"loss": v[0], "bpp": v[1], "distortion": v[2], "aux": v[3], "skipped": int(round(v[4] * n)),
               "seconds": seconds}
        bar.set_postfix(loss=f"{v[0]:.4g}", bpp=f"{v[1]:.3f}", D=f"{v[2]:.4g}", aux=f"{v[3]:.3g}", refresh=False)
        return row

    def _after_validation(self, val_loss: float, done: int) -> int | None:
        """Plateau schedule, best checkpoint, early stopping; returns the step to stop at or None."""
        if self.sched is not None and self.cfg.schedule == "plateau":
            self.sched.step(val_loss)
        if val_loss < self.best:
            self.best, self.bad_vals = val_loss, 0
            self.checkpoint(done, 0, finished=False, path=self.best_path, best_val_loss=val_loss)
        else:
            self.bad_vals += 1
        if self.cfg.early_stop and self.bad_vals >= self.cfg.early_stop and done < self.cfg.steps:
            log.info("%s: early stop at step %d (%d validations without improvement)", self.out, done,
                     self.bad_vals)
            return done
        return None
