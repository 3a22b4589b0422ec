"""``codecs zoo CONFIG.yaml``: MSE base model(s), then every loss × λ level fine-tuned from them.

Layout of the output folder::

    OUT/base/mse-<level>.pt      MSE base models (trained from scratch, one per base level)
    OUT/<loss>-<level>.pt        fine-tuned models (the zoo proper; ``match`` reads these)
    OUT/zoo.json                 the resolved config and what was trained / skipped

Finished checkpoints are skipped; partial ones resume exactly. A loss joins only when its metric is in
the registry, differentiable, and its backbone weights are present; otherwise one line says why.
Config keys (see ``configs/zoo-demo.yaml``): ``seed, arch {N, M} | quality, patch, batch, data,
lambdas (overrides), base {steps, lr, levels}, finetune {losses, levels, steps, lr}, ckpt_every, threads``.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from lossarena.errors import InputError, UnknownNameError

CONFIG_DIR = Path(__file__).parent / "configs"
LEVELS = ("low", "medium", "high")


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


def train_zoo(config, out_dir, data=None, *, losses: list[str] | None = None, progress: bool = True,
              log=print, device: str | None = None) -> dict:
    """Train a zoo; returns ``{"base": [paths], "models": [paths], "skipped": {loss: reason}}``."""
    import os

    from .model import read_config
    from .train import train

    cfg = load_config(config)
    out = Path(out_dir)
    rank0 = int(os.environ.get("RANK", "0")) == 0
    say = log if rank0 else (lambda *a, **k: None)
    data = data or cfg.get("data")
    if not data:
        raise InputError("no training images: give --data DIR or data: in the zoo config")
    table = load_lambda_table(cfg.get("lambda_table"))
    overrides = cfg.get("lambdas") or {}
    arch = cfg.get("arch") or {}
    common = dict(patch=int(cfg.get("patch", 256)), batch=int(cfg.get("batch", 8)), seed=int(cfg.get("seed", 0)),
                  quality=cfg.get("quality"), N=arch.get("N"), M=arch.get("M"),
                  ckpt_every=int(cfg.get("ckpt_every", 0)), progress=progress, device=device or "auto",
                  aux_lr=float(cfg.get("aux_lr", 1e-3)), threads=cfg.get("threads"))

    def lam(loss, level):
        o = overrides.get(loss, {})
        return float(o[level]) if level in o else default_lambda(loss, level, table)

    def run(loss, level, path, steps, lr, init=None):
        path = Path(path)
        if path.is_file():
            c = read_config(path)
            if c.get("step", 0) >= steps:
                say(f"exists: {path} ({c['loss']} λ={c['lmbda']:g}, {c['step']} steps)")
                return path
        return train(loss=loss, lmbda=lam(loss, level), data=data, out=path, init=init, steps=int(steps), lr=float(lr), level=level,
                     resume=True, **common)

    base_cfg = cfg.get("base") or {}
    ft = cfg.get("finetune") or {}
    base_levels = list(base_cfg.get("levels", ["medium"]))
    ft_levels = list(ft.get("levels", LEVELS))
    for lv in base_levels + ft_levels:
        if lv not in LEVELS and not any(lv in v for v in overrides.values()):
            raise InputError(f"unknown λ level '{lv}' (expected {', '.join(LEVELS)} or a level in lambdas:)")
    result = {"base": [], "models": [], "skipped": {}}
    for lv in base_levels:
        result["base"].append(str(run("mse", lv, out / "base" / f"mse-{lv}.pt", base_cfg.get("steps", 1000),
                                      base_cfg.get("lr", 1e-4))))
    wanted = losses or ft.get("losses") or ["mse"]
    for loss in wanted:
        name, why = loss_status(loss)
        if name is None:
            say(f"skipped {loss}: {why}")
            result["skipped"][loss] = why
            continue
        for lv in ft_levels:
            base = out / "base" / f"mse-{lv if lv in base_levels else base_levels[len(base_levels) // 2]}.pt"
            result["models"].append(str(run(name, lv, out / f"{name}-{lv}.pt", ft.get("steps", 200),
                                            ft.get("lr", 1e-5), init=base)))
    if rank0:
        (out / "zoo.json").write_text(json.dumps({"config": {k: v for k, v in cfg.items()}, **result}, indent=1,
                                                 default=str))
    return result
