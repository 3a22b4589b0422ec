"""Configuration of the ROI codec: defaults, YAML loading and validation (used by training and runtime)."""

from __future__ import annotations

from pathlib import Path

from lossarena.errors import InputError

DEFAULTS = {
    "name": "roi",
    "model": {"N": 192, "M": 192, "K": 3, "n_rates": 6, "protected": 48, "attn_blocks": 3,
              "gain_interp": "exp"},
    "alpha": 1.5,
    "alpha_train": {"min": 0.5, "max": 8.0, "p_off": 0.1},
    "lambdas": [720, 520, 420, 320, 220, 120],
    "lambda_sets": {},
    "base_rate": None,
    "distortion": {"mse_scale": 65025.0, "bg_weight": 300.0, "lambda_p": 0.5, "perceptual": "lpips-alex",
                   "perceptual_substitute": None, "ssim": "ssim:downsample=false"},
    "saliency": "spectral",
    "smooth_kernel": 51,  # RM_2D box size (seed 002: 51)
    "data": "kodak24",
    "eval_data": None,  # configs with require_split need data and eval_data, disjoint (zoo.check_split)
    "require_split": False,
    "patch": 256,
    "batch": 8,
    "lr": 1e-4,
    "aux_lr": 1e-3,
    "seed": 0,
    "threads": 0,
    "clip": 1.0,
    "rate_warmup": 0,
    "stage1": {"steps": 1000000},
    "stage2": {"steps": 1000000, "gan_weight": 1.0, "d_lr": 1e-4, "d_width": 64},
    "ckpt_every": 0,
}



def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in (over or {}).items():
        out[k] = _merge(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return out


def load_config(config) -> dict:
    """A config dict (defaults filled in) from a dict, a YAML path, or a packaged name (``roi-demo``)."""
    import yaml

    if isinstance(config, dict):
        cfg = config
    else:
        p = Path(str(config))
        if not p.is_file():
            pkg = Path(__file__).parent.parent / "configs" / f"{Path(str(config)).stem}.yaml"
            if pkg.is_file():
                p = pkg
            else:
                raise InputError(f"{config}: no such config file (packaged: roi-demo, roi-paper)")
        try:
            cfg = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise InputError(f"{p}: not valid YAML ({e})") from None
        if not isinstance(cfg, dict):
            raise InputError(f"{p}: expected a mapping at the top level")
    unknown = set(cfg) - set(DEFAULTS)
    if unknown:
        raise InputError(f"roi config: unknown field(s) {', '.join(sorted(unknown))}; known: {', '.join(DEFAULTS)}")
    cfg = _merge(DEFAULTS, cfg)
    if cfg.get("base_rate") is not None:
        key = f"{float(cfg['base_rate']):g}"
        sets = {f"{float(k):g}": v for k, v in (cfg.get("lambda_sets") or {}).items()}
        if key not in sets:
            raise InputError(f"roi config: base_rate {key} has no entry in lambda_sets ({', '.join(sets)})")
        cfg["lambdas"] = list(sets[key])
    n = int(cfg["model"]["n_rates"])
    if len(cfg["lambdas"]) != n:
        raise InputError(f"roi config: field 'lambdas' has {len(cfg['lambdas'])} values, model.n_rates is {n}")
    lam = [float(v) for v in cfg["lambdas"]]
    if any(b >= a for a, b in zip(lam, lam[1:])):
        raise InputError("roi config: field 'lambdas' must decrease with the rate index (λ weights the rate; "
                         "index 0 = lowest rate = largest λ)")
    return cfg

