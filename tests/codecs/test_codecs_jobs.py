"""The zoo as jobs: executors (local parallel, Slurm through submitit), locks, zoo-status, torchrun."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from codecs_helpers import images, require_slurm, threads_as_in_workers, tiny_zoo_config
from lossarena.codecs.cli import main as codecs_main
from lossarena.codecs.executors import get_executor
from lossarena.codecs.jobs import run_job
from lossarena.codecs.model import read_checkpoint
from lossarena.codecs.zoo import plan_zoo, train_zoo, zoo_status

from lossarena.errors import InputError, UnknownNameError

TESTS = Path(__file__).resolve().parents[1]  # tests/ (the helper modules)


def test_executor_registry_did_you_mean():
    with pytest.raises(UnknownNameError, match="did you mean 'slurm'"):
        get_executor("slurn")
    with pytest.raises(InputError, match="jobs-per-gpu"):
        get_executor("local", jobs_per_gpu=0)


def test_plan_is_a_dag_and_the_old_yaml_stays_valid(tmp_path):
    jobs, skipped = plan_zoo("zoo-demo", tmp_path, images(), losses=["mse", "no-such-metric"])
    assert [j.name for j in jobs] == ["base/mse-medium", "mse-low", "mse-medium", "mse-high"]
    assert all(j.deps == ["base/mse-medium"] for j in jobs[1:]) and jobs[0].deps == []
    assert jobs[1].config.init == str(tmp_path / "base" / "mse-medium.pt")
    assert "no-such-metric" in skipped
    with pytest.raises(InputError, match="train: unknown key"):
        plan_zoo(tiny_zoo_config(train={"bogus": 1}), tmp_path, images())


def test_lock_makes_a_second_run_wait_then_skip(tmp_path):
    """Another process holds the checkpoint's lock: this run waits, then finds the model complete."""
    jobs, _ = plan_zoo(tiny_zoo_config(), tmp_path, images(), device="cpu")
    base = jobs[0]
    base.config.progress = False
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from filelock import FileLock\n"
         "with FileLock(sys.argv[1]):\n print('locked', flush=True); time.sleep(4)", str(base.ckpt) + ".lock"],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    t0 = time.time()
    with pytest.raises(TimeoutError):
        run_job(base, lock_timeout=0.5)
    assert not base.ckpt.exists()
    assert run_job(base) == "trained"  # waited for the holder
    assert time.time() - t0 > 3.5
    holder.wait(10)
    assert run_job(base) == "exists"


@pytest.mark.slow
def test_local_executor_runs_jobs_in_parallel_children(tmp_path, capsys):
    out = tmp_path / "zoo"
    res = train_zoo(tiny_zoo_config(), out, images(), progress=False, executor="local", jobs=2, device="cpu")
    assert res["failed"] == [] and set(res["states"].values()) == {"done"}
    for p in res["base"] + res["models"]:
        cfg = read_checkpoint(p)["config"]
        assert cfg["finished"] and Path(p).with_name(Path(p).stem + ".log.csv").is_file()
    assert codecs_main(["zoo-status", str(out)]) == 0
    text = capsys.readouterr().out
    assert "3 done" in text and "base/mse-medium" in text


@pytest.mark.slow
def test_local_executor_slot_workers_outlive_a_failed_job(tmp_path):
    """Slot workers are long-lived processes: a failing job is reported with its exit code and one line,
    its output lands in .jobs/<job>.log, and the same workers go on with the other jobs."""
    import dataclasses

    from lossarena.codecs.jobs import ZooJob

    jobs, _ = plan_zoo(tiny_zoo_config(), tmp_path / "zoo", images(), device="cpu")
    base = next(j for j in jobs if j.kind == "base")
    fts = [j for j in jobs if j.kind == "finetune"]
    orphan = ZooJob("orphan", dataclasses.replace(fts[0].config, init=str(tmp_path / "missing.pt"),
                                                  out=str(tmp_path / "zoo" / "orphan.pt")), [base.name])
    ex = get_executor("local", jobs=2)
    said: list[str] = []
    states = ex.run([orphan, base, *fts], say=said.append)
    assert states["orphan"] == "failed" and all(states[j.name] == "done" for j in [base, *fts])
    line = next(s for s in said if "orphan" in s)
    assert line.startswith("FAILED: orphan") and "missing.pt" in line and "does not exist" in line
    assert (tmp_path / "zoo" / ".jobs" / "orphan.log").is_file()
    assert "step" in (tmp_path / "zoo" / ".jobs" / f"{fts[0].name}.log").read_text()  # the job's own log
    assert ex._workers == {}  # the workers were shut down with the run


@pytest.mark.slow
@pytest.mark.parametrize("slots", [1, 2])
def test_local_executor_runs_finetunes_whose_base_was_trained_before(tmp_path, slots):
    """A dependency outside the run counts as done (it used to make the parallel executor spin forever);
    a job whose base is in fact missing fails with its own error."""
    jobs, _ = plan_zoo(tiny_zoo_config(), tmp_path / "zoo", images(), device="cpu")
    base = next(j for j in jobs if j.kind == "base")
    fts = [j for j in jobs if j.kind == "finetune"]
    with pytest.raises(InputError, match="does not exist"):
        get_executor("local", jobs=slots).run(fts[:1], say=lambda s: None) if slots == 1 else run_job(fts[0])
    if slots == 2:
        assert get_executor("local", jobs=2).run(fts[:1], say=lambda s: None) == {fts[0].name: "failed"}
    assert run_job(base) == "trained"
    states = get_executor("local", jobs=slots).run(fts, say=lambda s: None)
    assert states == {j.name: "done" for j in fts}


def _jobcomp_records() -> list[dict]:
    conf = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True).stdout
    m = re.search(r"JobCompLoc\s*=\s*(\S+)", conf)
    path = Path(m.group(1)) if m else None
    if path is None or not path.is_file():
        pytest.fail(f"Slurm's jobcomp file is missing ({path}); .ci/start_slurm.sh sets JobCompType=jobcomp/filetxt")
    return [dict(re.findall(r"(\w+)=(\S*)", line)) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.slow
def test_slurm_zoo_finetunes_start_after_the_base(tmp_path):
    require_slurm()
    out = tmp_path / "zoo"
    res = train_zoo(tiny_zoo_config(), out, images(), progress=False, executor="slurm", time_min=10,
                    gpus_per_job=0, wait=True, timeout_s=600, poll_s=1.0)
    assert res["failed"] == [], res
    rows = {r["job"]: r for r in zoo_status(out)}
    assert {r["state"] for r in rows.values()} == {"done"}
    base_id = rows["base/mse-medium"]["slurm"].split("_")[0]
    ft_ids = {rows[n]["slurm"].split("_")[0] for n in ("mse-low", "mse-high")}
    assert len(ft_ids) == 1 and base_id not in ft_ids  # one array for the fine-tunes
    ft_array = ft_ids.pop()
    # Slurm's own records: every fine-tune task started after the base job ended
    recs = []
    for _ in range(30):  # slurmctld writes jobcomp when a job ends; give it a moment
        recs = _jobcomp_records()
        base = [r for r in recs if r.get("JobId") == base_id or r.get("ArrayJobId") == base_id]
        fts = [r for r in recs if r.get("ArrayJobId") == ft_array]
        if base and len(fts) == 2:
            break
        time.sleep(1)
    assert base and len(fts) == 2, recs[-5:]
    assert all(r["JobState"] == "COMPLETED" for r in base + fts)
    base_end = max(r["EndTime"] for r in base)  # ISO timestamps compare as strings
    assert all(r["StartTime"] >= base_end and r["EligibleTime"] >= base_end for r in fts), (base, fts)
    # a second submission trains nothing (every checkpoint is complete)
    again = train_zoo(tiny_zoo_config(), out, images(), progress=False, executor="slurm", wait=True)
    assert set(again["states"].values()) == {"done"}


ZOO_TORCHRUN = r"""
import sys, torch
torch.set_num_threads(1)
sys.path.insert(0, sys.argv[3])
from codecs_helpers import tiny_zoo_config
from lossarena.codecs.zoo import train_zoo
res = train_zoo(tiny_zoo_config(), sys.argv[2], sys.argv[1], progress=False, device="cpu")
assert res["failed"] == [], res
print("ok", flush=True)
"""


@pytest.mark.slow
def test_zoo_under_torchrun_two_gloo_processes(tmp_path):
    """One process group for the whole zoo: no hang, every model trained with world size 2."""
    script = tmp_path / "zoo_ddp.py"
    script.write_text(ZOO_TORCHRUN)
    out = tmp_path / "zoo"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script),
           str(images()), str(out), str(TESTS)]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("ok") == 2
    for p in [out / "base" / "mse-medium.pt", out / "mse-low.pt", out / "mse-high.pt"]:
        cfg = read_checkpoint(p)["config"]
        assert cfg["world_size"] == 2 and cfg["finished"]
    with pytest.raises(InputError, match="under torchrun"):
        os.environ["WORLD_SIZE"] = "2"
        try:
            get_executor("local", jobs=2)
        finally:
            del os.environ["WORLD_SIZE"]


def test_prepare_data_cli_and_train_from_cache_with_workers(tmp_path, capsys):
    cache = tmp_path / "cache"
    assert codecs_main(["prepare-data", str(images()), "--out", str(cache)]) == 0
    assert "3 images" in capsys.readouterr().out
    ck = tmp_path / "m.pt"
    assert codecs_main(["train", "--data", str(cache), "--out", str(ck), "--steps", "2", "--patch", "64",
                        "--batch", "2", "--N", "16", "--M", "24", "--workers", "1", "--device", "cpu",
                        "--log-every", "1"]) == 0
    assert read_checkpoint(ck)["config"]["data"] == str(cache)
    assert codecs_main(["zoo-status", str(tmp_path / "nothing")]) == 2


def _two_checkpoints():
    from codecs_helpers import tiny_checkpoint

    return [tiny_checkpoint(steps=2, lmbda=50.0, name="ev-a"), tiny_checkpoint(steps=2, lmbda=5000.0, name="ev-b")]


def test_evaluate_appends_rows_and_resumes(tmp_path):
    from lossarena.codecs.evaluate import evaluate

    a, b = _two_checkpoints()
    out = tmp_path / "results.csv"
    first = evaluate([a], images(), out, metrics=["psnr"], progress=False, device="cpu")
    assert len(first) == 3
    both = evaluate([a, b], images(), out, metrics=["psnr"], progress=False, device="cpu", resume=True)
    assert len(both) == 6 and both.iloc[:3].equals(first)  # the old rows were kept, not recomputed
    assert set(both["model"]) == {"ev-a", "ev-b"}
    with pytest.raises(InputError, match="cannot resume: its columns"):
        evaluate([a], images(), out, metrics=["psnr", "mse"], progress=False, device="cpu", resume=True)


@pytest.mark.slow
def test_evaluate_parallel_over_checkpoints_equals_serial(tmp_path):
    from lossarena.codecs.evaluate import evaluate

    ck = _two_checkpoints()
    with threads_as_in_workers(2):  # the same per-process thread count as each of the two workers
        serial = evaluate(ck, images(), tmp_path / "s.csv", metrics=["psnr"], progress=False, device="cpu")
    par = evaluate(ck, images(), tmp_path / "p.csv", metrics=["psnr"], progress=False, device="cpu", jobs=2)
    key = ["model", "image"]
    s, p = serial.sort_values(key).reset_index(drop=True), par.sort_values(key).reset_index(drop=True)
    assert s[key + ["bpp", "bpp_est", "psnr"]].equals(p[key + ["bpp", "bpp_est", "psnr"]])
