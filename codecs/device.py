"""One parser for ``--device auto|cpu|cuda|cuda:N`` shared by every codec tool (zoo, ROI, evaluate, match).

Rules
-----
* ``auto`` (the default): ``cuda:LOCAL_RANK`` when CUDA is available (``LOCAL_RANK`` is set by torchrun,
  0 otherwise), else ``cpu``.
* ``cuda``: ``cuda:LOCAL_RANK`` (so under ``torchrun --nproc_per_node K`` every rank takes its own GPU).
* ``cuda:N``: that GPU. Under torchrun with several local ranks, ``cuda:N`` is taken as the *first* GPU
  of this node and rank ``r`` uses ``cuda:(N + LOCAL_RANK)`` (never all ranks on one GPU).
* ``cpu``: the CPU.

Asking for CUDA where there is none, or for a GPU index that does not exist, raises
:class:`~lossarena.errors.InputError` (exit code 2, one line).
"""

from __future__ import annotations

import os
import re

import torch

from lossarena.errors import InputError

DEVICE_HELP = "auto (default: cuda:LOCAL_RANK when CUDA is available, else cpu), cpu, cuda, cuda:N"
_PATTERN = re.compile(r"^(auto|cpu|cuda|cuda:(\d+))$")


def local_rank() -> int:
    """``LOCAL_RANK`` from torchrun (0 when not launched by torchrun)."""
    try:
        return int(os.environ.get("LOCAL_RANK", "0"))
    except ValueError:
        raise InputError(f"LOCAL_RANK: expected an integer, got '{os.environ.get('LOCAL_RANK')}'") from None


def resolve_device(spec: str | torch.device | None = "auto") -> torch.device:
    """The ``torch.device`` a tool should run on.

    Parameters
    ----------
    spec : str, torch.device or None
        ``"auto"`` (or None), ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` (case-insensitive).

    Returns
    -------
    torch.device
        Always with an index for CUDA (``cuda:k``), so ``torch.cuda.set_device`` accepts it.

    Raises
    ------
    InputError
        ``--device: expected ..., got ...`` for an unknown value; ``--device cuda...: CUDA is not
        available ...`` when CUDA is requested where there is none; an index past the GPU count.
    """
    if isinstance(spec, torch.device):
        spec = str(spec)
    s = (spec or "auto").strip().lower()
    m = _PATTERN.match(s)
    if not m:
        raise InputError(f"--device: expected auto, cpu, cuda or cuda:N, got '{spec}'")
    if s == "cpu":
        return torch.device("cpu")
    lr = local_rank()
    if s == "auto":
        return torch.device("cuda", lr % max(1, torch.cuda.device_count())) if torch.cuda.is_available() \
            else torch.device("cpu")
    if not torch.cuda.is_available():
        raise InputError(f"--device {s}: CUDA is not available on this machine (use --device cpu or auto)")
    n = torch.cuda.device_count()
    base = int(m.group(2)) if m.group(2) is not None else 0
    world_local = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)
    idx = base + lr if (m.group(2) is None or world_local > 1) else base
    if idx >= n:
        raise InputError(f"--device {s}: GPU index {idx} (local rank {lr}) does not exist; this machine has {n}")
    return torch.device("cuda", idx)


def add_device_argument(parser, *, default: str = "auto") -> None:
    """Add the shared ``--device`` option to an ``argparse`` parser."""
    parser.add_argument("--device", default=default, help=DEVICE_HELP)
