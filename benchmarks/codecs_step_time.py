"""Training step time per loss relative to MSE (ScaleHyperprior N=128, M=192, batch 8×128×128, CPU).

Every loss is timed side by side in the same run: rounds interleave the losses so machine load hits
them alike; the median over rounds is reported with its ratio to MSE, both as wall-clock time and as
process CPU time (with one thread the CPU time is the robust measure on a shared machine).

    .venv/bin/python benchmarks/codecs_step_time.py [--rounds 5] [--threads 2] [--batch 8] [--patch 128]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--patch", type=int, default=128)
    ap.add_argument("--losses", help="comma-separated (default: every differentiable metric that can run)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from lossarena.codecs.model import build_model, main_and_aux_parameters
    from lossarena.codecs.train import bpp_from_likelihoods, default_loss_kwargs, make_loss

    from lossarena.metrics import list_metrics, weights_present

    names = args.losses.split(",") if args.losses else [
        s.name for s in list_metrics() if s.differentiable and weights_present(s) and s.name != "psnr"]
    names = ["mse"] + [n for n in names if n != "mse"]
    torch.manual_seed(0)
    model = build_model(128, 192).train()
    main_p, aux_p = main_and_aux_parameters(model)
    opt = torch.optim.Adam(main_p, lr=1e-5)
    aux_opt = torch.optim.Adam(aux_p, lr=1e-3)
    x = torch.rand(args.batch, 3, args.patch, args.patch)
    losses = {}
    for n in names:
        try:
            losses[n] = make_loss(n, default_loss_kwargs(n, args.patch))[0]
        except Exception as e:  # noqa: BLE001
            print(f"skipped {n}: {e}")

    def step(fn):
        opt.zero_grad()
        aux_opt.zero_grad()
        out = model(x)
        loss = 100.0 * fn(out["x_hat"], x) + bpp_from_likelihoods(out["likelihoods"], x.numel() // 3)
        loss.backward()
        opt.step()
        model.aux_loss().backward()
        aux_opt.step()

    times = {n: [] for n in losses}
    cpu = {n: [] for n in losses}
    for fn in losses.values():  # warm-up
        step(fn)
    for _ in range(args.rounds):
        for n, fn in losses.items():
            t0, c0 = time.perf_counter(), time.process_time()
            step(fn)
            times[n].append(time.perf_counter() - t0)
            cpu[n].append(time.process_time() - c0)
    base = statistics.median(times["mse"])
    cbase = statistics.median(cpu["mse"])
    print(f"ScaleHyperprior N=128 M=192, batch {args.batch}x{args.patch}x{args.patch}, {args.threads} threads, "
          f"median of {args.rounds} interleaved rounds")
    print(f"{'loss':14s} {'wall s':>8s} {'x MSE':>7s} {'CPU s':>8s} {'x MSE':>7s}")
    for n, ts in times.items():
        m, c = statistics.median(ts), statistics.median(cpu[n])
        print(f"{n:14s} {m:8.3f} {m / base:7.2f} {c:8.3f} {c / cbase:7.2f}")


if __name__ == "__main__":
    main()
