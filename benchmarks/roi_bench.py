"""Benchmarks of the ROI codec (results in benchmarks/RESULTS_roi.md).

    python benchmarks/roi_bench.py bits  CKPT [--images N] [--rates 0,2.5,5]
    python benchmarks/roi_bench.py speed CKPT [--image kodim23]
    python benchmarks/roi_bench.py rate  CKPT [--images N] [--step 0.25]
    python benchmarks/roi_bench.py alloc CKPT [--images N] [--alpha 0.5]

Images: Kodak24 from the shared data (lossarena.paths.shared_data("images", "kodak24")). Single thread.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch


def kodak(n: int | None = None) -> list[Path]:
    from lossarena.paths import shared_data

    d = shared_data("images", "kodak24")
    if d is None:
        sys.exit("Kodak24 not available (shared data); nothing to benchmark")
    files = sorted(d.glob("kodim*.png"))
    return files[:n] if n else files


def bits(args):
    """Real entropy-coded bits (y and z strings) vs the model's estimate (−Σ log2 likelihoods)."""
    from lossarena.codecs.roi.codec import get_codec
    from lossarena.data.images import load_image

    codec = get_codec(args.ckpt)
    rates = [float(r) for r in args.rates.split(",")]
    rows = []
    for p in kodak(args.images):
        x = load_image(p)
        rm = codec.rm2d(x)
        for r in rates:
            bs = codec.compress(x, r, rm2d=rm)
            payload = 8 * sum(len(s) for st in bs.strings for s in st)
            total = 8 * len(bs.to_bytes())
            est = codec.estimate(x, r, rm2d=rm)["bpp"] * x.shape[-2] * x.shape[-1]
            y_q, _ = codec.decompress_latents(bs)
            exact = bool(torch.equal(y_q, codec.estimate(x, r, rm2d=rm)["y_hat"]))
            rows.append((p.stem, r, est, payload, total, exact))
            print(f"{p.stem} r={r:g}: est {est:.0f} bits, payload {payload} ({100 * (payload / est - 1):+.2f}%), "
                  f"file {total} bits, exact={exact}", flush=True)
    tot_est = sum(r[2] for r in rows)
    tot_pay = sum(r[3] for r in rows)
    worst = max(abs(r[3] / r[2] - 1) for r in rows)
    print(f"\nALL {len(rows)} codings: payload/estimate − 1 = {100 * (tot_pay / tot_est - 1):+.3f}% "
          f"(worst single {100 * worst:.2f}%), all decoded latents exact: {all(r[5] for r in rows)}")


def speed(args):
    """Encode/decode seconds on one Kodak image: ROI codec vs CompressAI cheng2020-attn (random init)."""
    from compressai.zoo import cheng2020_attn
    from lossarena.codecs.roi.codec import get_codec
    from lossarena.codecs.roi.model import RoiNetwork, pad_image
    from lossarena.data.images import load_image

    x = load_image(kodak()[0].parent / f"{args.image}.png")
    xp = pad_image(x)
    res = []

    def timed(f):
        t, c = time.perf_counter(), time.process_time()
        out = f()
        cpu.append(time.process_time() - c)
        return out, time.perf_counter() - t

    cpu: list[float] = []

    codec = get_codec(args.ckpt)
    rm = codec.rm2d(x)
    bs, te = timed(lambda: codec.compress(x, 2.5, rm2d=rm))
    _, td = timed(lambda: codec.decompress(bs))
    a = codec.model.arch()
    res.append((f"ROI codec, trained demo (N=M={a['M']})", te, td, 8 * len(bs.to_bytes()) / x[0, 0].numel()))
    torch.manual_seed(0)
    big = RoiNetwork(192, 192, protected=48, attn_blocks=3).eval()
    big.update(force=True)
    rm_lat = torch.nn.functional.avg_pool2d(pad_image(rm), 16, 16)
    (ys, zs, zshape, _), te = timed(lambda: big.compress(xp, rm_lat, 2.5))
    _, td = timed(lambda: big.g_s(big.decompress_latents(ys[0], zs, zshape) * big.inv_gain(2.5)))
    res.append(("ROI codec, paper size N=M=192 (random init)", te, td, 8 * (len(ys[0]) + len(zs)) / x[0, 0].numel()))
    for q in (3, 6):
        torch.manual_seed(0)
        net = cheng2020_attn(quality=q, pretrained=False).eval()
        net.update(force=True)
        with torch.no_grad():
            enc, te = timed(lambda net=net: net.compress(xp))
            _, td = timed(lambda net=net, enc=enc: net.decompress(enc["strings"], enc["shape"]))
        nb = sum(len(s[0]) for s in enc["strings"])
        res.append((f"CompressAI cheng2020-attn q{q} (N={net.N}, random init)", te, td, 8 * nb / x[0, 0].numel()))
    print(f"image {args.image} {x.shape[-1]}x{x.shape[-2]}, torch threads {torch.get_num_threads()}")
    print("| model | encode s (wall / CPU) | decode s (wall / CPU) | bpp |\n|---|---|---|---|")
    for i, (name, te, td, bpp) in enumerate(res):
        print(f"| {name} | {te:.2f} / {cpu[2 * i]:.2f} | {td:.2f} / {cpu[2 * i + 1]:.2f} | {bpp:.3f} |")


def rate(args):
    """File size vs rate index: the six trained points and interpolations between them."""
    from lossarena.codecs.roi.codec import get_codec
    from lossarena.data.images import load_image

    codec = get_codec(args.ckpt)
    n = codec.n_rates
    steps = int(round((n - 1) / args.step))
    rates = [i * args.step for i in range(steps + 1)]
    ok_all = True
    for p in kodak(args.images):
        x = load_image(p)
        rm = codec.rm2d(x)
        sizes = [len(codec.compress(x, r, rm2d=rm).to_bytes()) for r in rates]
        ok = all(b > a for a, b in zip(sizes, sizes[1:]))
        ok_all &= ok
        bpp = [8 * s / x[0, 0].numel() for s in sizes]
        print(f"{p.stem}: strictly increasing={ok}; bpp " + " ".join(f"{r:g}:{b:.4f}" for r, b in zip(rates, bpp)),
              flush=True)
    print(f"ALL strictly increasing: {ok_all} ({len(rates)} rate indices, step {args.step})")


def alloc(args):
    """At equal total bpp: ROI-PSNR − background-PSNR with ROI latents on (α) vs off (α = ∞), and the
    latent-domain allocation (:func:`lossarena.codecs.roi.codec.latent_allocation`)."""
    from lossarena.codecs.roi.codec import get_codec, latent_allocation, weighted_psnr
    from lossarena.codecs.roi.provider import RoiCondition
    from lossarena.data.images import load_image

    codec = get_codec(args.ckpt)
    cond_off = RoiCondition(args.ckpt, alpha="inf", iterations=16)
    gaps, latent = [], []
    for p in kodak(args.images):
        x = load_image(p)
        rm = codec.rm2d(x)
        for r in (1.0, 3.0):
            on = codec.decompress(codec.compress(x, r, rm2d=rm, alpha=args.alpha))
            bpp_on = codec.estimate(x, r, rm2d=rm, alpha=args.alpha)["bpp"]
            r_off = cond_off.rate_for(x, bpp_on, rm)
            off_e = codec.estimate(x, r_off, rm2d=rm, alpha="inf")
            off = codec.decompress(codec.compress(x, r_off, rm2d=rm, alpha="inf"))

            def gap(xh, x=x, rm=rm):
                return float(weighted_psnr(xh, x, rm)[0] - weighted_psnr(xh, x, 1 - rm)[0])

            g_on, g_off = gap(on), gap(off)
            gaps.append(g_on - g_off)
            print(f"{p.stem} r_on={r:g} bpp {bpp_on:.4f} vs off r={r_off:.3f} bpp {off_e['bpp']:.4f}: "
                  f"ROI−BG PSNR on {g_on:+.2f} dB, off {g_off:+.2f} dB, difference {g_on - g_off:+.2f} dB; "
                  f"ROI-PSNR on {float(weighted_psnr(on, x, rm)[0]):.2f} off {float(weighted_psnr(off, x, rm)[0]):.2f}",
                  flush=True)
            la_on = latent_allocation(codec, x, rm, r, args.alpha)
            la_off = latent_allocation(codec, x, rm, r_off, "inf")
            latent.append((la_on["roi_bit_share"], la_off["roi_bit_share"], la_on["latent_snr_gap"],
                           la_off["latent_snr_gap"]))
            print(f"    latent: ROI bit share on {la_on['roi_bit_share']:.3f} off {la_off['roi_bit_share']:.3f}; "
                  f"latent SNR gap on {la_on['latent_snr_gap']:+.2f} dB off {la_off['latent_snr_gap']:+.2f} dB")
    print(f"image domain: mean difference {statistics.mean(gaps):+.3f} dB over {len(gaps)} codings; positive in "
          f"{sum(g > 0 for g in gaps)}/{len(gaps)}")
    print(f"latent domain: ROI bit share on {statistics.mean(v[0] for v in latent):.3f} vs off "
          f"{statistics.mean(v[1] for v in latent):.3f}; latent SNR gap on {statistics.mean(v[2] for v in latent):+.2f} "
          f"vs off {statistics.mean(v[3] for v in latent):+.2f} dB")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("bits", "speed", "rate", "alloc"):
        s = sub.add_parser(name)
        s.add_argument("ckpt")
        s.add_argument("--images", type=int, default=None)
        s.add_argument("--rates", default="0,2.5,5")
        s.add_argument("--image", default="kodim23")
        s.add_argument("--step", type=float, default=0.25)
        s.add_argument("--alpha", type=float, default=0.5)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    import warnings

    warnings.filterwarnings("ignore")
    {"bits": bits, "speed": speed, "rate": rate, "alloc": alloc}[args.cmd](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
