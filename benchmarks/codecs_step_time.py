"""Training step time per loss and per speed option, on the chosen device, with syncs per step.

Runs the real training step (:meth:`lossarena.codecs.train._Trainer.step`: ScaleHyperprior, Adam +
aux Adam, gradient clipping, the on-device non-finite guard) on one fixed uint8 batch. Every loss and
variant is timed side by side in the same run: rounds interleave them so machine load hits them alike;
the median over rounds is reported with its ratio to MSE in fp32 eager mode (the previous code's
setting). On CUDA the device is synchronised only around each timed block of ``--steps`` steps.

"syncs/step" counts tensor→Python conversions (``item``, ``float``, ``bool``, ``tolist``, ...) in the
steady state; on CUDA, ``torch.cuda.set_sync_debug_mode("warn")`` additionally counts every real
host↔device synchronisation ("cuda syncs/step").

    .venv/bin/python benchmarks/codecs_step_time.py --device cpu --patch 128 --losses mse,ms-ssim
    .venv/bin/python benchmarks/codecs_step_time.py --device cuda --bf16 both --compile both   # a GPU
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings

import torch

CONVERSIONS = ("item", "tolist", "numpy", "cpu", "__bool__", "__float__", "__int__", "__index__")


def count_syncs(fn, n: int, device: torch.device) -> tuple[float, float]:
    """(Python conversions per call, CUDA syncs per call) over ``n`` calls of ``fn``."""
    calls = []
    saved = {k: getattr(torch.Tensor, k) for k in CONVERSIONS}
    for k, orig in saved.items():
        def wrapped(t, *a, _o=orig, _k=k, **kw):
            calls.append(_k)
            return _o(t, *a, **kw)
        setattr(torch.Tensor, k, wrapped)
    cuda_syncs = 0
    try:
        if device.type == "cuda":
            torch.cuda.set_sync_debug_mode("warn")
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            for _ in range(n):
                fn()
            cuda_syncs = sum("synchroniz" in str(x.message) for x in w)
    finally:
        if device.type == "cuda":
            torch.cuda.set_sync_debug_mode(0)
        for k, orig in saved.items():
            setattr(torch.Tensor, k, orig)
    return len(calls) / n, cuda_syncs / n


class PreviousStep:
    """The step as the previous code ran it, on the same model and loss (for a side-by-side ratio):
    float32 batch copied synchronously, ``bool(isfinite(norm))`` on the host before ``opt.step()``
    (non-fused Adam), ``float()`` of loss/bpp/D/aux every 5th step for the progress bar."""

    def __init__(self, tr, dev):
        import copy

        from lossarena.codecs.model import main_and_aux_parameters

        self.model = copy.deepcopy(tr.model)
        self.loss_fn, self.lmbda, self.dev, self.n = tr.loss_fn, float(tr.cfg.lmbda), dev, 0
        self.main, self.aux = main_and_aux_parameters(self.model)
        self.opt = torch.optim.Adam(self.main, lr=1e-5)
        self.aux_opt = torch.optim.Adam(self.aux, lr=1e-3)

    def step(self, xb):
        from lossarena.codecs.interface import bpp_from_likelihoods

        x = xb.float().div(255).to(self.dev)
        self.opt.zero_grad(set_to_none=True)
        self.aux_opt.zero_grad(set_to_none=True)
        res = self.model(x)
        bpp = bpp_from_likelihoods(res["likelihoods"], x.shape[0] * x.shape[2] * x.shape[3])
        d = self.loss_fn(res["x_hat"], x)
        total = self.lmbda * d + bpp
        total.backward()
        norm = torch.nn.utils.clip_grad_norm_(self.main, 1.0)
        if bool(torch.isfinite(norm)):
            self.opt.step()
        aux = self.model.aux_loss()
        aux.backward()
        self.aux_opt.step()
        if self.n % 5 == 0:
            _ = [float(v.detach()) for v in (total, bpp, d, aux)]
        self.n += 1


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="auto")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=3, help="steps per timed block")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--patch", type=int, default=256)
    ap.add_argument("--quality", type=int, default=3)
    ap.add_argument("--bf16", default="off", choices=["off", "on", "both"])
    ap.add_argument("--compile", default="off", choices=["off", "on", "both"])
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--no-previous", dest="previous", action="store_false",
                    help="skip the previous code's step (float input, host-side finiteness check, foreach Adam)")
    ap.add_argument("--losses", help="comma-separated (default: every differentiable metric that can run)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from lossarena.codecs.device import resolve_device
    from lossarena.codecs.train import Dist, TrainConfig, _Trainer

    from lossarena.errors import InputError
    from lossarena.metrics import list_metrics, weights_present

    try:
        dev = resolve_device(args.device)
    except InputError as e:
        print(f"codecs_step_time: {e}", file=sys.stderr)
        return 2
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
        torch.backends.cudnn.benchmark = True
    names = args.losses.split(",") if args.losses else [
        s.name for s in list_metrics() if s.differentiable and weights_present(s) and s.name != "psnr"]
    names = ["mse"] + [n for n in names if n != "mse"]
    opts = {"off": [False], "on": [True], "both": [False, True]}
    variants = [(b, c) for b in opts[args.bf16] for c in opts[args.compile]]
    g = torch.Generator().manual_seed(0)
    xb = torch.randint(0, 256, (args.batch, 3, args.patch, args.patch), dtype=torch.uint8, generator=g)
    if dev.type == "cuda":
        xb = xb.pin_memory()

    trainers = {}
    for n in names:
        for bf16, comp in variants:
            cfg = TrainConfig(loss=n, lmbda=100.0, data=".", out="/dev/null", quality=args.quality, patch=args.patch,
                              batch=args.batch, lr=1e-5, device=str(dev), bf16=bf16, compile=comp,
                              channels_last=args.channels_last, progress=False)
            try:
                tr = _Trainer(cfg, Dist(), dev).setup()
                for _ in range(2):  # warm-up (compilation, cudnn autotuning, lazily built constants)
                    tr.step(xb)
                trainers[(n, bf16, comp)] = tr
            except Exception as e:  # noqa: BLE001 - report and go on with the other losses
                print(f"skipped {n} bf16={bf16} compile={comp}: {type(e).__name__}: {e}", file=sys.stderr)
    if args.previous and ("mse", False, False) in trainers:
        trainers[("mse (previous step)", False, False)] = PreviousStep(trainers[("mse", False, False)], dev)
    if ("mse", False, False) not in trainers:
        print("the MSE fp32 eager baseline failed", file=sys.stderr)
        return 1

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    times = {k: [] for k in trainers}
    for _ in range(args.rounds):
        for k, tr in trainers.items():
            sync()
            t0 = time.perf_counter()
            for _ in range(args.steps):
                tr.step(xb)
            sync()
            times[k].append((time.perf_counter() - t0) / args.steps)
    syncs = {k: count_syncs(lambda tr=tr: tr.step(xb), 2, dev) for k, tr in trainers.items()}
    base = statistics.median(times[("mse", False, False)])
    devname = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"CPU, {args.threads} threads"
    print(f"ScaleHyperprior quality {args.quality}, batch {args.batch}x{args.patch}x{args.patch} on {dev} "
          f"({devname}), median of {args.rounds} interleaved rounds x {args.steps} steps"
          + (", channels_last" if args.channels_last else ""))
    print(f"{'loss':14s} {'bf16':>5s} {'compile':>7s} {'ms/step':>9s} {'x MSE fp32':>10s} {'syncs/step':>10s} "
          f"{'cuda syncs/step':>15s}")
    for (n, bf16, comp), ts in times.items():
        m = statistics.median(ts)
        py, cu = syncs[(n, bf16, comp)]
        print(f"{n:14s} {'on' if bf16 else 'off':>5s} {'on' if comp else 'off':>7s} {m * 1000:9.1f} {m / base:10.2f} "
              f"{py:10.1f} {cu if dev.type == 'cuda' else float('nan'):15.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
