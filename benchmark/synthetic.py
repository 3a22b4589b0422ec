"""Synthetic 2AFC triplets whose answers are known: for tests, benchmarks and demos without real data.

``kind="noise"``: A and B are the reference plus Gaussian noise of different strengths; humans
(simulated) prefer the less noisy one with probability ``sigmoid(sharpness · (σ_b − σ_a))`` —
every sensible metric should score well above chance.

``kind="shift-vs-noise"``: each distorted image also gets a random global brightness shift that
the simulated humans ignore (they judge by the noise alone). The shift dominates the pixel error,
so MSE/PSNR sit near chance, while a metric that learns to look at structure and gradients (DPIS
trained on these triplets) can get it right: a learnable task.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from lossarena.data.images import save_image
from lossarena.data.triplets import write_triplets


def _texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """A smooth random colour texture in [0.2, 0.8] (sum of a few random sinusoids per channel)."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    img = np.zeros((3, size, size))
    for c in range(3):
        for _ in range(4):
            fx, fy = rng.uniform(0.5, 6.0, 2)
            ph = rng.uniform(0, 2 * np.pi)
            img[c] += rng.uniform(0.3, 1.0) * np.sin(2 * np.pi * (fx * xx + fy * yy) + ph)
    img -= img.min(axis=(1, 2), keepdims=True)
    img /= img.max(axis=(1, 2), keepdims=True) + 1e-9
    return 0.2 + 0.6 * img


def synthetic_triplets(out_dir, n: int = 40, size: int = 64, *, kind: str = "noise", seed: int = 0,
                       n_references: int | None = None, judges: int = 1, sharpness: float = 60.0,
                       csv_name: str = "triplets.csv") -> pd.DataFrame:
    """Write ``n`` triplets (PNG images + ``triplets.csv``) under ``out_dir``; return the DataFrame.

    With ``judges > 1`` ``p_a`` is the fraction of that many simulated judges choosing A (so the data
    has repeated judgments); with 1 it is a single vote. The returned frame has extra columns
    ``sigma_a, sigma_b, shift_a, shift_b, p_true``.
    """
    if kind not in ("noise", "shift-vs-noise"):
        raise ValueError(f"expected kind 'noise' or 'shift-vs-noise', got {kind!r}")
    out_dir = Path(out_dir)
    (out_dir / "img").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n_ref = n_references or max(1, n // 4)
    refs = [_texture(rng, size) for _ in range(n_ref)]
    for k, r in enumerate(refs):
        save_image(torch.from_numpy(r)[None].float(), out_dir / "img" / f"ref{k:03d}.png")
    rows = []
    for i in range(n):
        k = i % n_ref
        r = refs[k]
        while True:
            s_a, s_b = rng.uniform(0.005, 0.08, 2)
            if abs(s_a - s_b) > 0.015:
                break
        if kind == "shift-vs-noise":
            sh_a, sh_b = rng.uniform(-0.15, 0.15, 2)
        else:
            sh_a = sh_b = 0.0
        names = []
        for tag, s, sh in (("a", s_a, sh_a), ("b", s_b, sh_b)):
            x = np.clip(r + sh + rng.normal(0.0, s, r.shape), 0, 1)
            name = f"img/t{i:04d}_{tag}.png"
            save_image(torch.from_numpy(x)[None].float(), out_dir / name)
            names.append(name)
        p_true = 1.0 / (1.0 + np.exp(-sharpness * (s_b - s_a)))
        p_a = float(rng.binomial(judges, p_true)) / judges
        rows.append((f"img/ref{k:03d}.png", names[0], names[1], p_a, s_a, s_b, sh_a, sh_b, p_true))
    df = pd.DataFrame(rows, columns=["reference", "a", "b", "p_a", "sigma_a", "sigma_b", "shift_a", "shift_b",
                                     "p_true"])
    write_triplets(df, out_dir / csv_name)
    return df
