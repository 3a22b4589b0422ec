"""ROI codec checkpoints: build the network from a config, save, read and load (runtime and training)."""

from __future__ import annotations

from pathlib import Path

from lossarena.errors import InputError

from ..model import atomic_save, load_checkpoint_dict
from .model import Discriminator, RoiNetwork

CKPT_FORMAT = "lossarena-roi-codec"
CKPT_VERSION = 2
# version 2: gain units parametrised as log v_s and log C (v'_s = C / v_s, seed 002 Eq. 10); version-1
# checkpoints had two independent gain tables and are not read (retrain with `lossarena roi train`).


def _network(arch: dict) -> RoiNetwork:
    return RoiNetwork(N=int(arch["N"]), M=int(arch["M"]), K=int(arch["K"]), n_rates=int(arch["n_rates"]),
                      protected=int(arch["protected"]), attn_blocks=int(arch["attn_blocks"]),
                      alpha=float(arch["alpha"]), gain_interp=str(arch.get("gain_interp", "exp")))


def build_model(cfg: dict) -> RoiNetwork:
    """A freshly initialised :class:`RoiNetwork` for a config from :func:`~.config.load_config`.

    Parameters
    ----------
    cfg : dict
        Full config (``model`` section and ``alpha``).

    Returns
    -------
    RoiNetwork
        In training mode, on the CPU.
    """
    return _network(dict(cfg["model"], alpha=cfg["alpha"]))


def _ready_state(model: RoiNetwork) -> dict:
    import copy

    m = copy.deepcopy(model).cpu().eval()
    m.update(force=True)
    return {k: v.detach().clone() for k, v in m.state_dict().items()}


def save_checkpoint(path, model, cfg, *, stage, step, disc=None, train_state=None, extra=None) -> Path:
    """Write a checkpoint atomically (entropy tables updated on a CPU copy of ``model``); returns its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    obj = {
        "format": CKPT_FORMAT, "version": CKPT_VERSION, "codec": "roi",
        "config": cfg, "arch": model.arch(), "stage": int(stage), "step": int(step),
        "lambdas": [float(v) for v in cfg["lambdas"]],
        "loss": {"d_roi": "255^2 * mean(RM_2D * (x - x_hat)^2)",
                 "d_bg": "1 - SSIM(xt, x) + lambda_p * d_P(xt, x), xt = RM*x + (1-RM)*x_hat",
                 "rate": "bpp of y and z", "total": "d_roi + bg_weight * d_bg + lambda_s * bpp (+ gan)",
                 **(extra or {})},
        "state_dict": _ready_state(model),
    }
    if disc is not None:
        obj["discriminator"] = {"width": disc.width, "state_dict": {k: v.detach().cpu().clone()
                                                                     for k, v in disc.state_dict().items()}}
    if train_state is not None:
        obj["train_state"] = train_state
    return atomic_save(obj, path)


def read_checkpoint(path) -> dict:
    """The validated checkpoint dict (``InputError`` naming the file for a wrong format or version)."""
    return load_checkpoint_dict(path, CKPT_FORMAT, CKPT_VERSION, "ROI codec")


def load_model(path_or_obj, device="cpu") -> tuple[RoiNetwork, dict]:
    """``(network, checkpoint dict)``: the network in eval mode on ``device`` (entropy tables loaded).

    Parameters
    ----------
    path_or_obj : str, Path or dict
        A checkpoint file or an already read checkpoint dict.
    device : str or torch.device
        Where to put the network.

    Raises
    ------
    InputError
        Unreadable file, wrong format/version, or weights that do not fit the recorded architecture.
    """
    obj = read_checkpoint(path_or_obj) if not isinstance(path_or_obj, dict) else path_or_obj
    try:
        model = _network(obj["arch"])
        model.load_state_dict(obj["state_dict"])
    except (RuntimeError, KeyError, TypeError, ValueError) as e:
        raise InputError(f"ROI checkpoint weights do not match its architecture ({e})") from None
    return model.to(device).eval(), obj


def load_discriminator(obj: dict, device="cpu") -> Discriminator:
    """The stage-2 discriminator of a checkpoint dict (``InputError`` when it has none)."""
    if "discriminator" not in obj:
        raise InputError("this ROI checkpoint has no discriminator (train stage 2 first)")
    d = Discriminator(obj["arch"]["M"], width=int(obj["discriminator"]["width"]))
    d.load_state_dict(obj["discriminator"]["state_dict"])
    return d.to(device).eval()

