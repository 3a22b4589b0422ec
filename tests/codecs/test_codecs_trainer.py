"""The training loop: no host syncs in the steady state, bf16/channels_last/compile agree with fp32,
the recipe (LR schedules, validation, best checkpoint, early stopping, CSV log) and exact resume."""

from __future__ import annotations

import csv

import pytest
import torch
from codecs_helpers import TINY, images, session_dir
from lossarena.codecs.model import read_checkpoint
from lossarena.codecs.train import LOG_COLUMNS, Dist, TrainConfig, _Trainer, train

pytestmark = pytest.mark.usefixtures("one_thread")

CONVERSIONS = ("item", "tolist", "numpy", "cpu", "__bool__", "__float__", "__int__", "__index__")


def _trainer(**kw) -> _Trainer:
    cfg = TrainConfig(loss=kw.pop("loss", "mse"), lmbda=300.0, data=str(images()), out=str(session_dir() / "x.pt"),
                      steps=50, lr=1e-3, progress=False, device="cpu", **{**TINY, **kw})
    return _Trainer(cfg, Dist(), torch.device("cpu")).setup()


def _batch(seed=0):
    from lossarena.codecs.dataset import PatchDataset

    ds = PatchDataset(images(), 64, seed)
    return torch.stack([ds[n] for n in range(2)])


class _Counter:
    """Counts tensor -> Python conversions (each one is a host<->device sync on a GPU)."""

    def __init__(self, monkeypatch):
        self.calls: list[str] = []
        for name in CONVERSIONS:
            orig = getattr(torch.Tensor, name)

            def wrapped(t, *a, _orig=orig, _name=name, **k):
                self.calls.append(_name)
                return _orig(t, *a, **k)

            monkeypatch.setattr(torch.Tensor, name, wrapped)


@pytest.mark.parametrize("loss", ["mse", "ms-ssim"])
def test_steady_state_step_has_no_host_sync(monkeypatch, loss):
    tr = _trainer(loss=loss)
    xb = _batch()
    tr.step(xb)  # warm-up (first-call work such as lazily built constants is allowed here)
    counter = _Counter(monkeypatch)
    sums = torch.zeros(5)
    for _ in range(4):
        sums += tr.step(xb)
    monkeypatch.undo()
    assert counter.calls == [], f"{len(counter.calls)} tensor->Python conversions in 4 steps: {counter.calls[:10]}"
    assert torch.isfinite(sums).all()


def test_non_finite_gradient_is_skipped_on_device():
    tr = _trainer()
    xb = _batch()
    before = {n: p.detach().clone() for n, p in tr.model.named_parameters() if not n.endswith("quantiles")}
    real = tr.loss_fn

    tr.loss_fn = lambda a, b: real(a, b) * float("nan")
    stats = tr.step(xb)
    assert stats[4] == 1.0
    for n, p in tr.model.named_parameters():
        if n in before:
            assert torch.equal(before[n], p), n  # the update was skipped, nothing became NaN
    tr.loss_fn = real
    stats = tr.step(xb)
    assert stats[4] == 0.0 and any(not torch.equal(before[n], p) for n, p in tr.model.named_parameters()
                                   if n in before)


def _losses(steps=3, **kw):
    tr = _trainer(**kw)
    return torch.stack([tr.step(_batch(s))[0] for s in range(steps)])


def test_bf16_channels_last_compile_match_fp32():
    ref = _losses()
    assert torch.allclose(_losses(channels_last=True), ref, rtol=1e-3)  # other conv summation order
    bf = _losses(bf16=True)
    assert torch.allclose(bf, ref, rtol=0.05), (bf, ref)  # bf16 transforms: ~3 significant digits
    assert not torch.equal(bf, ref)  # autocast really ran
    # compile: aot_eager traces forward+backward through AOTAutograd (inductor: see the slow test)
    assert torch.allclose(_losses(compile=True, compile_backend="aot_eager"), ref, rtol=1e-4)


def test_bf16_keeps_entropy_models_and_metric_in_fp32():
    tr = _trainer(bf16=True)
    x = _batch().float() / 255
    out = tr.net(x)
    assert out["x_hat"].dtype == torch.float32
    assert all(v.dtype == torch.float32 for v in out["likelihoods"].values())
    seen = {}
    def record(module, inputs, output):
        seen["g_s"] = output.dtype

    hook = tr.model.g_s.register_forward_hook(record)
    tr.net(x)
    hook.remove()
    assert seen["g_s"] == torch.bfloat16


@pytest.mark.slow
def test_compile_inductor_matches_fp32():
    ref = _losses(2)
    assert torch.allclose(_losses(2, compile=True), ref, rtol=1e-3)


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_log_csv_validation_best_checkpoint_and_schedule(tmp_path):
    out = train(loss="mse", lmbda=300.0, data=images(), out=tmp_path / "m.pt", steps=6, lr=1e-3, progress=False,
                device="cpu", log_every=2, val=images(), val_every=3, val_crop=64, schedule="cosine", **TINY)
    rows = _rows(tmp_path / "m.log.csv")
    assert list(rows[0]) == LOG_COLUMNS
    assert [int(r["step"]) for r in rows] == [2, 3, 4, 6]
    assert rows[1]["val_loss"] and not rows[1]["loss"] and rows[0]["loss"] and not rows[0]["val_loss"]
    lrs = [float(r["lr"]) for r in rows]
    assert lrs == sorted(lrs, reverse=True) and lrs[-1] < 1e-4  # cosine decays to min_lr at the end
    best = read_checkpoint(tmp_path / "m.best.pt")["config"]
    vals = {int(r["step"]): float(r["val_loss"]) for r in rows if r["val_loss"]}
    assert best["best_val_loss"] == pytest.approx(min(vals.values()), rel=1e-5)
    assert read_checkpoint(out)["config"]["finished"]


def test_resume_restores_schedule_exactly(tmp_path):
    kw = dict(loss="mse", lmbda=200.0, data=images(), lr=1e-3, progress=False, device="cpu", log_every=1,
              schedule="step", lr_step=2, lr_factor=0.5, steps=6, **TINY)
    straight = train(out=tmp_path / "a.pt", **kw)
    # simulate a preemption after the step-3 checkpoint: rebuild b from its step-3 state
    b3 = tmp_path / "b3.pt"
    train(out=b3, **{**kw, "ckpt_every": 3, "steps": 3})
    split = train(out=b3, resume=True, **kw)
    a, b = read_checkpoint(straight), read_checkpoint(split)
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k
    assert a["train_state"]["scheduler"] == b["train_state"]["scheduler"]
    ra, rb = _rows(tmp_path / "a.log.csv"), _rows(tmp_path / "b3.log.csv")
    assert [r["lr"] for r in ra] == [r["lr"] for r in rb] and [r["loss"] for r in ra] == [r["loss"] for r in rb]


def test_early_stopping_and_plateau(tmp_path):
    out = train(loss="mse", lmbda=300.0, data=images(), out=tmp_path / "e.pt", steps=20, lr=0.0, aux_lr=0.0, progress=False,
                device="cpu", val=images(), val_every=2, val_crop=64, early_stop=2, schedule="plateau",
                lr_patience=0, **TINY)
    cfg = read_checkpoint(out)["config"]
    assert cfg["finished"] and cfg["stopped_early"] == 6 and cfg["step"] == cfg["stopped_early"]
    from lossarena.codecs.jobs import is_complete

    assert is_complete(out, 20)  # the zoo does not retrain an early-stopped model
