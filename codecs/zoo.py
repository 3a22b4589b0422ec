"""``codecs zoo CONFIG.yaml``: MSE base model(s), then every loss × λ level fine-tuned from them, as jobs.

Layout of the output folder::

    OUT/base/mse-<level>.pt      MSE base models (trained from scratch, one per base level)
    OUT/<loss>-<level>.pt        fine-tuned models (the zoo proper; ``match`` reads these)
    OUT/<stem>.log.csv           training log beside every checkpoint
    OUT/.jobs/<job>.json         job state (queued/running/done/failed, host, pid, Slurm id, times)
    OUT/zoo.json                 the resolved config and what was trained / skipped

The zoo is a small DAG: bases → fine-tunes (:func:`plan_zoo`). An executor
(:mod:`lossarena.codecs.executors`: ``local``, ``slurm``) runs it; every job holds a file lock on its
checkpoint while it trains, skips a checkpoint that is complete and resumes a partial one exactly, so
two zoo runs on one folder never race and a requeued (preempted) Slurm job continues where its last
checkpoint stopped. A loss joins only when its metric is in the registry, differentiable, and its
backbone weights are present; otherwise one line says why.

Config keys (see ``configs/zoo-demo.yaml``): ``seed, arch {N, M} | quality, patch, batch, data,
eval_data, require_split, lambdas (overrides), base {steps, lr, levels}, finetune {losses, levels, steps,
lr}, ckpt_every, threads, train {...TrainConfig fields: schedule, val, val_every, early_stop, bf16, ...}``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import socket
from pathlib import Path

import yaml

from lossarena.errors import InputError, UnknownNameError

from .jobs import JOBS_DIR, ZooJob
from .train import TrainConfig

log = logging.getLogger(__name__)

CONFIG_DIR = Path(__file__).parent / "configs"
LEVELS = ("low", "medium", "high")
TRAIN_KEYS = {f.name for f in dataclasses.fields(TrainConfig)} - {"loss", "lmbda", "data", "out", "init", "steps",
                                                                   "lr", "level", "resume"}


def load_lambda_table(path: str | Path | None = None) -> dict:
    p = Path(path) if path else CONFIG_DIR / "lambdas.yaml"
    return yaml.safe_load(p.read_text())


def default_lambda(loss: str, level: str, table: dict | None = None) -> float:
    from lossarena.metrics import get_metric

    table = table or load_lambda_table()
    name = get_metric(loss).name
    grid = table["lambdas"].get(name)
    if grid is None:
        raise InputError(f"no default λ grid for loss '{name}' in lambdas.yaml; give lambdas: {{{name}: "
                         f"{{low: .., medium: .., high: ..}}}} in the zoo config")
    if level not in grid:
        raise InputError(f"λ level '{level}' not in the grid for '{name}' (has: {', '.join(grid)})")
    return float(grid[level])


def load_config(config) -> dict:
    if isinstance(config, dict):
        return dict(config)
    p = Path(config)
    if not p.is_file():
        q = CONFIG_DIR / str(config)
        q = q if q.is_file() else CONFIG_DIR / f"{config}.yaml"
        if not q.is_file():
            raise InputError(f"{config}: no such zoo config (shipped: zoo-demo, zoo-paper)")
        p = q
    try:
        cfg = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise InputError(f"{p}: not valid YAML ({e})") from None
    if not isinstance(cfg, dict):
        raise InputError(f"{p}: expected a mapping at the top level")
    cfg.setdefault("_source", str(p))
    return cfg


def loss_status(loss: str) -> tuple[str | None, str]:
    """``(canonical name, "")`` when the loss can train here, else ``(None, reason)``."""
    from lossarena.metrics import get_metric, weights_present
    from lossarena.metrics.weights import backbone_status

    try:
        spec = get_metric(loss)
    except UnknownNameError:
        return None, "metric not in the registry (`lossarena metrics list`)"
    if not spec.differentiable:
        return None, "metric is not differentiable"
    if not weights_present(spec):
        missing = [b for b in spec.needs_weights if not backbone_status(b).ok]
        st = backbone_status(missing[0])
        return None, f"ImageNet backbone {missing[0]} missing ({st.path}; `lossarena weights status`)"
    return spec.name, ""


# ------------------------------------------------------------------------------------------- plan
def check_split(cfg: dict, data, eval_data) -> None:
    """``require_split: true`` configs need disjoint training and evaluation sets."""
    if not cfg.get("require_split"):
        return
    name = cfg.get("name", cfg.get("_source", "this config"))
    if not data or not eval_data:
        raise InputError(f"{name}: needs a training folder and a separate evaluation folder "
                         f"(--data TRAIN --eval-data EVAL, or data:/eval_data: in the config); see docs/codecs.md")
    from .dataset import check_disjoint

    check_disjoint(data, eval_data)


def plan_zoo(config, out_dir, data=None, *, losses: list[str] | None = None, device: str = "auto",
             progress: bool = False, eval_data=None, log_fn=None) -> tuple[list[ZooJob], dict]:
    """The zoo as jobs in dependency order, and ``{loss: reason}`` for losses that cannot train here."""
    cfg = load_config(config)
    out = Path(out_dir)
    data = data or cfg.get("data")
    if not data:
        raise InputError("no training images: give --data DIR or data: in the zoo config")
    check_split(cfg, data, eval_data or cfg.get("eval_data"))
    table = load_lambda_table(cfg.get("lambda_table"))
    overrides = cfg.get("lambdas") or {}
    arch = cfg.get("arch") or {}
    extra = dict(cfg.get("train") or {})
    unknown = set(extra) - TRAIN_KEYS
    if unknown:
        raise InputError(f"train: unknown key(s) {', '.join(sorted(unknown))} (known: {', '.join(sorted(TRAIN_KEYS))})")
    common = dict(patch=int(cfg.get("patch", 256)), batch=int(cfg.get("batch", 8)), seed=int(cfg.get("seed", 0)),
                  quality=cfg.get("quality"), N=arch.get("N"), M=arch.get("M"),
                  ckpt_every=int(cfg.get("ckpt_every", 0)), progress=progress, device=device or "auto",
                  aux_lr=float(cfg.get("aux_lr", 1e-3)), threads=cfg.get("threads"), data=str(data))
    common.update(extra)

    def lam(loss, level):
        o = overrides.get(loss, {})
        return float(o[level]) if level in o else default_lambda(loss, level, table)

    base_cfg = cfg.get("base") or {}
    ft = cfg.get("finetune") or {}
    base_levels = list(base_cfg.get("levels", ["medium"]))
    ft_levels = list(ft.get("levels", LEVELS))
    for lv in base_levels + ft_levels:
        if lv not in LEVELS and not any(lv in v for v in overrides.values()):
            raise InputError(f"unknown λ level '{lv}' (expected {', '.join(LEVELS)} or a level in lambdas:)")
    jobs: list[ZooJob] = []
    for lv in base_levels:
        jobs.append(ZooJob(f"base/mse-{lv}", TrainConfig(
            loss="mse", lmbda=lam("mse", lv), out=str(out / "base" / f"mse-{lv}.pt"), steps=int(base_cfg.get("steps", 1000)),
            lr=float(base_cfg.get("lr", 1e-4)), level=lv, resume=True, **common)))
    skipped = {}
    for loss in losses or ft.get("losses") or ["mse"]:
        name, why = loss_status(loss)
        if name is None:
            skipped[loss] = why
            continue
        for lv in ft_levels:
            blv = lv if lv in base_levels else base_levels[len(base_levels) // 2]
            jobs.append(ZooJob(f"{name}-{lv}", TrainConfig(
                loss=name, lmbda=lam(name, lv), out=str(out / f"{name}-{lv}.pt"), steps=int(ft.get("steps", 200)),
                lr=float(ft.get("lr", 1e-5)), level=lv, resume=True,
                init=str(out / "base" / f"mse-{blv}.pt"), **common), deps=[f"base/mse-{blv}"]))
    return jobs, skipped


# ----------------------------------------------------------------------------------------- zoo
def train_zoo(config, out_dir, data=None, *, losses: list[str] | None = None, progress: bool = True,
              log=print, device: str | None = None, executor: str = "local", eval_data=None,
              **executor_options) -> dict:
    """Train a zoo; returns ``{"base": [paths], "models": [paths], "skipped": {loss: reason}, "failed": [...]}``.

    Parameters
    ----------
    config : str, Path or dict
        Zoo YAML (or a shipped name: zoo-demo, zoo-paper) or the mapping itself.
    out_dir : str or Path
        Output folder (see the module docstring).
    executor : str
        ``local`` or ``slurm`` (:data:`lossarena.codecs.executors.EXECUTORS`); ``executor_options`` go
        to it (local: ``gpus, jobs_per_gpu, jobs``; slurm: ``partition, account, time_min, gpus_per_job,
        cpus_per_job, mem_gb, wait``).
    """
    from .executors import get_executor

    rank0 = int(os.environ.get("RANK", "0")) == 0
    say = log if rank0 else (lambda *a, **k: None)
    out = Path(out_dir)
    jobs, skipped = plan_zoo(config, out, data, losses=losses, device=device or "auto", progress=progress,
                             eval_data=eval_data)
    for loss, why in skipped.items():
        say(f"skipped {loss}: {why}")
    ex = get_executor(executor, **executor_options)
    from .device import resolve_device
    from .distributed import Dist

    dist_ = Dist()  # under torchrun: one process group for the whole zoo (never one per model)
    if dist_.enabled and executor != "local":
        raise InputError(f"codecs zoo --executor {executor} submits jobs; run it without torchrun")
    dist_.start(resolve_device(device or "auto"))
    try:
        states = ex.run(jobs, say=say)
    finally:
        dist_.stop()
    result = {"base": [str(j.ckpt) for j in jobs if j.kind == "base"],
              "models": [str(j.ckpt) for j in jobs if j.kind == "finetune"], "skipped": skipped,
              "failed": [n for n, s in states.items() if s == "failed"], "states": states}
    if rank0:
        cfg = load_config(config)
        out.mkdir(parents=True, exist_ok=True)
        (out / "zoo.json").write_text(json.dumps({"config": cfg, "executor": executor, **result}, indent=1,
                                                 default=str))
    return result


def zoo_status(out_dir) -> list[dict]:
    """One row per job found in ``OUT/.jobs``: job, state, step/steps of its checkpoint, host, Slurm id."""
    from .model import read_config

    d = Path(out_dir) / JOBS_DIR
    if not d.is_dir():
        raise InputError(f"{out_dir}: no zoo jobs here (no {JOBS_DIR}/ folder)")
    rows = []
    for p in sorted(d.glob("*.json")):
        try:
            st = json.loads(p.read_text())
        except (json.JSONDecodeError, OSError) as e:
            raise InputError(f"{p}: unreadable job state ({e})") from None
        ck = Path(st.get("checkpoint", ""))
        step = steps = ""
        if ck.is_file():
            try:
                c = read_config(ck)
                step, steps = c.get("step", ""), c.get("steps", "")
            except InputError:
                step = "unreadable"
        state = st.get("state", "?")
        if state == "running" and st.get("host") == socket.gethostname() and not _alive(st.get("pid")):
            state = "failed (process gone)"
        rows.append({"job": st.get("job", p.stem), "state": state, "step": step, "steps": steps,
                     "host": st.get("host", ""), "slurm": st.get("slurm_job_id", ""),
                     "error": st.get("error", "")})
    return rows


def _alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
        return True
    except (OSError, TypeError, ValueError):
        return False
