"""One zoo job: the model it trains, its state file and how it runs under a file lock.

Shared by the zoo planner (:mod:`lossarena.codecs.zoo`) and the executors
(:mod:`lossarena.codecs.executors`) that run the jobs, so neither imports the other's module.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import socket
import time
from pathlib import Path

from lossarena.errors import InputError

from .train import TrainConfig

log = logging.getLogger(__name__)

JOBS_DIR = ".jobs"
STATES = ("queued", "running", "done", "failed", "skipped")


@dataclasses.dataclass
class ZooJob:
    """One model of the zoo: its name, the training settings and the jobs it waits for."""

    name: str  # "base/mse-medium", "ms-ssim-low"
    config: TrainConfig
    deps: list[str] = dataclasses.field(default_factory=list)

    @property
    def ckpt(self) -> Path:
        return Path(self.config.out)

    @property
    def kind(self) -> str:
        return "base" if not self.deps else "finetune"



# -------------------------------------------------------------------------------------- one job
def status_path(job: ZooJob) -> Path:
    out = job.ckpt.parent.parent if job.kind == "base" else job.ckpt.parent
    return out / JOBS_DIR / (job.name.replace("/", "__") + ".json")


def write_status(job: ZooJob, state: str, **info) -> None:
    p = status_path(job)
    p.parent.mkdir(parents=True, exist_ok=True)
    old = {}
    if p.is_file():
        try:
            old = json.loads(p.read_text())
        except (json.JSONDecodeError, OSError):
            old = {}
    old.update({"job": job.name, "state": state, "checkpoint": str(job.ckpt), "host": socket.gethostname(),
                "pid": os.getpid(), "time": time.time(), **info})
    if os.environ.get("SLURM_JOB_ID"):
        old["slurm_job_id"] = os.environ.get("SLURM_ARRAY_JOB_ID", os.environ["SLURM_JOB_ID"]) + (
            f"_{os.environ['SLURM_ARRAY_TASK_ID']}" if os.environ.get("SLURM_ARRAY_TASK_ID") else "")
    tmp = p.with_name(p.name + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(old, indent=1))
    os.replace(tmp, p)


def is_complete(ckpt: Path, steps: int) -> bool:
    from .model import read_config

    if not ckpt.is_file():
        return False
    c = read_config(ckpt)
    return bool(c.get("finished")) and (int(c.get("step", 0)) >= steps or c.get("stopped_early") is not None)


def run_job(job: ZooJob, *, lock_timeout: float = -1, say=log.info) -> str:
    """Train one zoo model under a file lock; returns ``"exists"`` or ``"trained"``.

    Every rank of a torchrun group calls this; rank 0 holds the lock and all ranks decide alike.
    """
    from filelock import FileLock

    from .distributed import Dist
    from .train import train

    dist_ = Dist()
    for dep in job.config.init and [Path(job.config.init)] or []:
        if not dep.is_file():
            raise InputError(f"{job.name}: its base {dep} does not exist (did the base job fail?)")
    lock = FileLock(str(job.ckpt) + ".lock", timeout=lock_timeout) if dist_.rank == 0 else None
    job.ckpt.parent.mkdir(parents=True, exist_ok=True)
    if lock is not None:
        lock.acquire()
    try:
        dist_.barrier()
        if is_complete(job.ckpt, job.config.steps):
            if dist_.rank == 0:
                write_status(job, "done", note="exists")
            say(f"exists: {job.ckpt}")
            return "exists"
        if dist_.rank == 0:
            write_status(job, "running", started=time.time())
        try:
            train(job.config)
        except BaseException as e:
            if dist_.rank == 0:
                write_status(job, "failed", error=f"{type(e).__name__}: {e}"[:500])
            raise
        if dist_.rank == 0:
            write_status(job, "done", finished=time.time())
        return "trained"
    finally:
        dist_.barrier()
        if lock is not None:
            lock.release()
