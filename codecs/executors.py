"""Where zoo jobs run: the ``EXECUTORS`` registry (``local``, ``slurm``; unknown names get a did-you-mean).

An executor takes the zoo's jobs (:class:`lossarena.codecs.jobs.ZooJob`, in dependency order) and runs
each through :func:`lossarena.codecs.jobs.run_job` (file lock, skip complete, resume partial) once its
dependencies are done. ``run(jobs, say) -> {job name: "done" | "failed" | "submitted"}``.

``local``
    ``jobs`` slots in parallel; with ``gpus=[0, 1, ...]`` and ``jobs_per_gpu=K`` there are
    ``len(gpus)·K`` slots and slot ``i`` trains on ``cuda:gpus[i % len(gpus)]`` (several small
    fine-tunes share one large GPU). One slot runs the jobs in this process (also under torchrun, where
    every rank takes part in every model with one process group); with more slots each slot is one
    long-lived worker process that runs its jobs one after another (a fresh process per job spent ~12 s
    importing torch and CompressAI — as long as a 60-step demo fine-tune). A job's output goes to
    ``.jobs/<job>.log``; a job that fails is reported and the others go on; a worker that dies (a crash
    in native code) fails its job and is replaced. ``python -m lossarena.codecs.jobrun JOB.pkl`` runs one
    pickled job by hand.
``slurm``
    ``submitit``: the bases as one job array, the fine-tunes as a second array with
    ``--dependency=afterok:<bases>``; partition/account/time/GPU options; jobs are ``Checkpointable``
    (requeued on preemption or timeout; the retry resumes from the last checkpoint exactly).
"""

from __future__ import annotations

import logging
import os
import pickle
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from lossarena.errors import InputError
from lossarena.registry import Registry

log = logging.getLogger(__name__)

EXECUTORS: Registry = Registry("executor")


def get_executor(name: str, **options):
    """An executor instance by name (``InputError`` with did-you-mean for an unknown one)."""
    return EXECUTORS.get(name)(**options)


def _by_name(jobs):
    return {j.name: j for j in jobs}


class LocalExecutor:
    """Runs the DAG on this machine (see the module docstring)."""

    def __init__(self, gpus: list[int] | None = None, jobs_per_gpu: int = 1, jobs: int | None = None):
        if jobs_per_gpu < 1:
            raise InputError(f"--jobs-per-gpu must be >= 1, got {jobs_per_gpu}")
        self.gpus = list(gpus or [])
        self.slots = len(self.gpus) * jobs_per_gpu if self.gpus else max(1, int(jobs or 1))
        self._workers: dict[int, ProcessPoolExecutor] = {}
        self._workers_lock = threading.Lock()
        if int(os.environ.get("WORLD_SIZE", "1")) > 1 and self.slots > 1:
            raise InputError("codecs zoo under torchrun runs one model at a time with every rank; for parallel "
                             "jobs run it without torchrun (--executor local --gpus ...) or use --executor slurm")

    def run(self, jobs, say=log.info) -> dict:
        jobs = list(jobs)
        names = {j.name for j in jobs}
        # a dependency outside this run (a base trained before) counts as done; run_job refuses the job
        # if the checkpoint it starts from is in fact missing
        outside = {d for j in jobs for d in j.deps if d not in names}
        states = self._run(jobs, {d: "done" for d in outside}, say)
        return {k: v for k, v in states.items() if k not in outside}

    def _run(self, jobs, states: dict, say) -> dict:
        from .jobs import run_job, write_status

        if self.slots == 1:
            for j in jobs:
                if any(states.get(d) != "done" for d in j.deps):
                    states[j.name] = "failed"
                    write_status(j, "failed", error="a dependency failed")
                    continue
                run_job(j, say=say)
                states[j.name] = "done"
            return states
        try:
            return self._run_slots(jobs, states, say)
        finally:
            for w in self._workers.values():
                w.shutdown(wait=True, cancel_futures=True)
            self._workers.clear()

    def _run_slots(self, jobs, states: dict, say) -> dict:
        from .jobs import write_status

        free = list(range(self.slots))
        lock = threading.Lock()
        pending = list(jobs)
        running: dict[Future, tuple] = {}
        with ThreadPoolExecutor(self.slots) as pool:
            while pending or running:
                for j in list(pending):
                    if any(states.get(d) == "failed" for d in j.deps):
                        pending.remove(j)
                        states[j.name] = "failed"
                        write_status(j, "failed", error="a dependency failed")
                    elif all(states.get(d) == "done" for d in j.deps) and free:
                        pending.remove(j)
                        with lock:
                            slot = free.pop(0)
                        write_status(j, "queued")
                        running[pool.submit(self._child, j, slot)] = (j, slot)
                if not running:
                    for j in pending:  # nothing runs and nothing can start: a dependency cycle
                        states[j.name] = "failed"
                        write_status(j, "failed", error="its dependencies can never finish (a cycle)")
                    pending.clear()
                    continue
                done, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for f in done:
                    j, slot = running.pop(f)
                    with lock:
                        free.append(slot)
                    rc, tail = f.result()
                    states[j.name] = "done" if rc == 0 else "failed"
                    say(f"{'done' if rc == 0 else 'FAILED'}: {j.name}" + (f" ({tail})" if rc else ""))
        return states

    def _worker(self, slot: int) -> ProcessPoolExecutor:
        """The slot's long-lived worker process (started on first use, or again after it died)."""
        import multiprocessing as mp

        with self._workers_lock:
            w = self._workers.get(slot)
            if w is None:
                w = self._workers[slot] = ProcessPoolExecutor(1, mp_context=mp.get_context("spawn"),
                                                              initializer=_worker_init)
            return w

    def _child(self, job, slot: int):
        import dataclasses

        from .jobs import JOBS_DIR

        cfg = job.config
        if self.gpus:
            cfg = dataclasses.replace(cfg, device=f"cuda:{self.gpus[slot % len(self.gpus)]}")
        elif cfg.device == "auto":
            cfg = dataclasses.replace(cfg, device="cpu")
        job = type(job)(job.name, dataclasses.replace(cfg, progress=False), list(job.deps))
        d = Path(job.ckpt).parent / JOBS_DIR if job.kind == "finetune" else Path(job.ckpt).parent.parent / JOBS_DIR
        d.mkdir(parents=True, exist_ok=True)
        stem = job.name.replace("/", "__")
        (d / f"{stem}.job.pkl").write_bytes(pickle.dumps(job))  # for `python -m lossarena.codecs.jobrun`
        logfile = d / f"{stem}.log"
        try:
            return self._worker(slot).submit(_run_in_worker, job, str(logfile)).result()
        except BrokenProcessPool:
            with self._workers_lock:
                w = self._workers.pop(slot, None)
            if w is not None:
                w.shutdown(wait=False)
            return 1, f"its worker process died (a crash in native code?); output in {logfile}"


def _worker_init() -> None:
    """A slot worker is one job at a time on this machine, never a rank of a torchrun group."""
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        os.environ.pop(k, None)


def _run_in_worker(job, logfile: str) -> tuple[int, str]:
    """Run one job in a slot worker; ``(exit code, one line)`` as ``jobrun`` would give (0, 2, 3 or 1).

    The job's log and anything it prints go to ``logfile``; an exception fails this job only."""
    import contextlib

    from lossarena.errors import LossarenaError

    from .jobs import run_job

    root = logging.getLogger()
    with open(logfile, "w", encoding="utf-8") as f, contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
        handler = logging.StreamHandler(f)
        handler.setFormatter(logging.Formatter("%(message)s"))
        level = root.level
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        try:
            run_job(job)
            return 0, ""
        except LossarenaError as e:
            return e.exit_code, f"{job.name}: {e}"
        except Exception as e:  # noqa: BLE001 - one failed job must not stop the others
            log.debug("job %s failed", job.name, exc_info=True)
            return 1, f"{type(e).__name__}: {e}"[:500]
        finally:
            root.removeHandler(handler)
            root.setLevel(level)


EXECUTORS.add("local", LocalExecutor)


class ZooTask:
    """The callable a Slurm job runs; ``checkpoint()`` (submitit) requeues it unchanged on preemption."""

    def __call__(self, job):
        from .jobs import run_job

        logging.basicConfig(level=logging.INFO)
        return run_job(job)

    def checkpoint(self, job):
        import submitit

        return submitit.helpers.DelayedSubmission(self, job)


class SlurmExecutor:
    """Submits the DAG through submitit (see the module docstring)."""

    def __init__(self, partition: str | None = None, account: str | None = None, time_min: int = 24 * 60,
                 gpus_per_job: int = 0, cpus_per_job: int | None = None, mem_gb: float | None = None,
                 folder: str | Path | None = None, wait: bool = False, array_parallelism: int = 64,
                 poll_s: float = 2.0, timeout_s: float | None = None, extra: dict | None = None):
        self.params = {"timeout_min": int(time_min), "slurm_array_parallelism": int(array_parallelism),
                       "name": "lossarena-zoo"}
        if partition:
            self.params["slurm_partition"] = partition
        if account:
            self.params["slurm_account"] = account
        if gpus_per_job:
            self.params["gpus_per_node"] = int(gpus_per_job)
        if cpus_per_job:
            self.params["cpus_per_task"] = int(cpus_per_job)
        if mem_gb:
            self.params["mem_gb"] = float(mem_gb)
        self.params["slurm_additional_parameters"] = dict(extra or {})
        self.folder, self.wait, self.poll_s, self.timeout_s = folder, wait, poll_s, timeout_s
        self.submitted: dict[str, str] = {}

    def run(self, jobs, say=log.info) -> dict:
        import dataclasses

        import submitit

        from .jobs import is_complete, write_status

        if not jobs:
            return {}
        out = Path(jobs[0].ckpt).parent
        if jobs[0].kind == "base":
            out = out.parent
        folder = Path(self.folder) if self.folder else out / ".slurm"
        todo = [j for j in jobs if not is_complete(j.ckpt, j.config.steps)]
        states = {j.name: "done" for j in jobs if j not in todo}
        for j in jobs:
            if j not in todo:
                say(f"exists: {j.ckpt}")
        todo = [type(j)(j.name, dataclasses.replace(j.config, progress=False), list(j.deps)) for j in todo]
        ex = submitit.AutoExecutor(folder=str(folder / "%j"), cluster="slurm")
        waves, done_names = [], set(states)
        remaining = list(todo)
        while remaining:  # waves: jobs whose dependencies are in earlier waves
            wave = [j for j in remaining if all(d in done_names or d not in {t.name for t in remaining}
                                                for d in j.deps)]
            if not wave:
                raise InputError("zoo jobs form a cycle")
            waves.append(wave)
            done_names |= {j.name for j in wave}
            remaining = [j for j in remaining if j not in wave]
        prev_ids: list[str] = []
        all_jobs = []
        for wave in waves:
            params = dict(self.params)
            if prev_ids:
                params["slurm_dependency"] = "afterok:" + ":".join(prev_ids)
            ex.update_parameters(**params)
            with ex.batch():
                sj = [ex.submit(ZooTask(), j) for j in wave]
            ids = sorted({s.job_id.split("_")[0] for s in sj})
            for j, s in zip(wave, sj):
                self.submitted[j.name] = s.job_id
                write_status(j, "queued", slurm_job_id=s.job_id)
                states[j.name] = "submitted"
            say(f"submitted {len(wave)} job(s) as Slurm array {', '.join(ids)}"
                + (f" (after {', '.join(prev_ids)})" if prev_ids else ""))
            prev_ids = ids
            all_jobs += list(zip(wave, sj))
        if self.wait:
            t0 = time.time()
            for j, s in all_jobs:
                while not s.done():
                    if self.timeout_s and time.time() - t0 > self.timeout_s:
                        raise InputError(f"Slurm jobs still running after {self.timeout_s:.0f} s "
                                         f"(`lossarena codecs zoo-status {out}`)")
                    time.sleep(self.poll_s)
                try:
                    s.result()
                    states[j.name] = "done"
                except Exception as e:  # noqa: BLE001 - submitit re-raises the job's failure
                    states[j.name] = "failed"
                    say(f"FAILED: {j.name}: {str(e).strip().splitlines()[-1] if str(e).strip() else e}")
        return states


EXECUTORS.add("slurm", SlurmExecutor)
