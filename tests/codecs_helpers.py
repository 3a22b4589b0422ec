"""Shared helpers for the codec tests: small images and tiny trained checkpoints (cached per session)."""

from __future__ import annotations

import contextlib
import functools
import tempfile
from pathlib import Path

import numpy as np

TINY = dict(N=16, M=24, patch=64, batch=2)


def write_images(folder: Path, n: int = 3, size=(96, 128)) -> Path:
    """Photos bundled in scikit-image's wheel (no download), cropped; synthetic if unavailable."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    arrays = []
    try:
        import skimage.data

        for name in ("astronaut", "coffee", "chelsea", "rocket"):
            arrays.append(getattr(skimage.data, name)()[..., :3])
    except Exception:  # noqa: BLE001 - fall back to synthetic texture
        pass
    rng = np.random.default_rng(0)
    while len(arrays) < n:
        yy, xx = np.mgrid[0:256, 0:256]
        base = np.stack([np.sin(xx / (7 + len(arrays))), np.cos(yy / 11), np.sin((xx + yy) / 5)], -1)
        arrays.append(((base * 0.4 + 0.5 + rng.normal(0, 0.05, base.shape)).clip(0, 1) * 255).astype(np.uint8))
    for i, a in enumerate(arrays[:n]):
        h, w = size
        y0, x0 = (a.shape[0] - h) // 2, (a.shape[1] - w) // 2
        Image.fromarray(np.ascontiguousarray(a[y0:y0 + h, x0:x0 + w])).save(folder / f"img{i}.png")
    return folder


@functools.cache
def session_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="lossarena-codecs-tests-"))


@functools.cache
def images() -> Path:
    return write_images(session_dir() / "images")


@functools.cache
def tiny_checkpoint(steps: int = 30, lmbda: float = 300.0, name: str = "tiny") -> Path:
    """A ScaleHyperprior with N=16, M=24 trained a few steps (enough for real entropy coding)."""

    from lossarena.codecs.train import train

    return train(loss="mse", lmbda=lmbda, data=images(), out=session_dir() / f"{name}.pt", steps=steps, lr=1e-3, progress=False,
                 threads=1, **TINY)


def slurm_available() -> tuple[bool, str]:
    """``(True, "")`` when a Slurm controller answers here (``sinfo`` lists an idle/mixed node)."""
    import shutil
    import subprocess

    if not shutil.which("sinfo") or not shutil.which("sbatch"):
        return False, "Slurm is not installed (sinfo/sbatch missing; CI starts it with .ci/start_slurm.sh)"
    try:
        r = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, f"sinfo failed ({e})"
    states = r.stdout.split()
    if r.returncode or not any(s.rstrip("*~#") in ("idle", "mixed", "allocated") for s in states):
        return False, f"no Slurm node is up (sinfo: {r.stdout.strip() or r.stderr.strip()})"
    return True, ""


def require_slurm() -> None:
    """Skip without a running Slurm; fail instead in CI (LOSSARENA_REQUIRE_SLURM=1 or _SERVICES=1)."""
    import os

    import pytest

    ok, why = slurm_available()
    if ok:
        return
    if os.environ.get("LOSSARENA_REQUIRE_SLURM") == "1" or os.environ.get("LOSSARENA_REQUIRE_SERVICES") == "1":
        pytest.fail(f"required in CI but unavailable: {why}")
    pytest.skip(why)


def tiny_zoo_config(**over) -> dict:
    """One MSE base and two fine-tunes of the tiny architecture (seconds of CPU per model)."""
    cfg = {"seed": 0, "arch": {"N": 16, "M": 24}, "patch": 64, "batch": 2, "threads": 1,
           "base": {"levels": ["medium"], "steps": 3, "lr": 2e-3},
           "finetune": {"losses": ["mse"], "levels": ["low", "high"], "steps": 2, "lr": 3e-3},
           "lambdas": {"mse": {"low": 5, "high": 5000}}}
    cfg.update(over)
    return cfg


@contextlib.contextmanager
def threads_as_in_workers(n: int):
    """Run the body with the torch thread count each of ``n`` CPU worker processes gets, then restore."""
    import torch
    from lossarena.codecs.evaluate import worker_threads

    old = torch.get_num_threads()
    torch.set_num_threads(worker_threads(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)
