"""``lossarena analysis``: outliers, scaling, matrices, reports, format conversion, simulation.

Every command reads votes in the canonical CSV or any format of :mod:`.readers` (sniffed, or
``--format``). Exit codes: 0 ok, 2 bad input (the message names the file and line).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lossarena.errors import InputError

from .votes import DUPLICATE_POLICIES


def _add_input(p: argparse.ArgumentParser) -> None:
    p.add_argument("votes", help="votes file (canonical votes.csv or a supported foreign format)")
    p.add_argument("--format", default=None, help="input format (default: guessed); see `convert --list`")
    p.add_argument("--duplicates", default="keep-all", choices=DUPLICATE_POLICIES,
                   help="what to do with repeated (participant, content, pair) votes (default keep-all)")
    p.add_argument("--selection-means", default=None, choices=["condition_1", "condition_2"],
                   help="pwcmp-2022 only: which condition selection=1 means (default condition_2)")
    p.add_argument("--experiment", default=None, choices=["btc", "ptc", "both"], help="aic3 only (default both)")


def _read(args):
    from .readers import read_any
    from .votes import n_judgments

    kw = {"duplicates": args.duplicates}
    if getattr(args, "selection_means", None):
        kw["selection_means"] = args.selection_means
    if getattr(args, "experiment", None):
        kw["experiment"] = args.experiment
    votes = read_any(args.votes, format=args.format, **kw)
    dup = votes.attrs.get("duplicates")
    msg = (f"read {n_judgments(votes)} votes ({votes.attrs.get('format')}), {votes['participant'].nunique()} participants, "
           f"{votes['content'].nunique()} contents")
    if dup is not None and dup.n_duplicate_votes:
        msg += f"; {dup} -> {args.duplicates}"
    if votes.attrs.get("dropped"):
        msg += "; dropped " + ", ".join(f"{k} {v}" for k, v in votes.attrs["dropped"].items())
    print(msg, file=sys.stderr)
    return votes


def _add_outlier_opts(p):
    from .outliers import CRITERIA, DEFAULT_LIKELIHOOD_THRESHOLD, DEFAULT_ZETA_THRESHOLD

    p.add_argument("--threshold", type=float, default=DEFAULT_ZETA_THRESHOLD,
                   help=f"flag zeta below this (coefficient of consistence; default {DEFAULT_ZETA_THRESHOLD})")
    p.add_argument("--likelihood-threshold", type=float, default=DEFAULT_LIKELIHOOD_THRESHOLD,
                   help=f"flag likelihood scores above this (IQRs below Q1; default {DEFAULT_LIKELIHOOD_THRESHOLD})")
    p.add_argument("--criterion", default="either", choices=CRITERIA, help="how the two tests combine (default either)")
    p.add_argument("--loo", default="auto", choices=["auto", "yes", "no"],
                   help="leave-one-out refits for the likelihood score (auto: in blocks of <= 100 participants)")


def _outlier_kw(args) -> dict:
    return {
        "zeta_threshold": args.threshold,
        "likelihood_threshold": args.likelihood_threshold,
        "criterion": args.criterion,
        "loo": {"auto": "auto", "yes": True, "no": False}[args.loo],
    }


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="lossarena analysis", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("outliers", help="per-participant circular triads, zeta, likelihood score -> outliers.csv")
    _add_input(p)
    p.add_argument("--out", required=True, help="outliers.csv")
    _add_outlier_opts(p)
    p.add_argument("--details", action="store_true", help="append detail columns (dmax, loglik_per_vote, ...)")
    p.add_argument("--filtered-out", default=None, help="also write the votes without the flagged participants")

    p = sub.add_parser("scale", help="Thurstone (JOD) or Bradley-Terry scores with bootstrap CIs -> scores.csv")
    _add_input(p)
    p.add_argument("--method", default="thurstone", choices=["thurstone", "bt"])
    p.add_argument("--group-by", default="", help="comma-separated columns, e.g. content or content,group "
                   "(default: pool all votes)")
    p.add_argument("--reference", default=None, help="condition fixed at 0 (default: mean 0)")
    p.add_argument("--bootstrap", type=int, default=500, help="bootstrap replicates over participants (0 = none)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--prior", default="auto", choices=["auto", "gaussian", "ridge", "none"],
                   help="Thurstone prior (auto: pwcmp's gaussian distance prior unless too costly, then ridge)")
    p.add_argument("--bt-alpha", type=float, default=0.01, help="Bradley-Terry regularisation (choix alpha)")
    p.add_argument("--outliers", default=None, help="outliers.csv: drop its flagged participants first")
    p.add_argument("--out", required=True, help="scores.csv")

    p = sub.add_parser("matrices", help="preference matrices, winning frequencies, per-pair binomial tests")
    _add_input(p)
    p.add_argument("--group-by", default="", help="blocks (default content[,group])")
    p.add_argument("--normalise", default="sum", choices=["sum", "max", "minmax", "none"])
    p.add_argument("--correction", default="holm", choices=["holm", "bh", "bonferroni", "none"])
    p.add_argument("--alpha", type=float, default=0.05)
    p.add_argument("--outliers", default=None, help="outliers.csv: drop its flagged participants first")
    p.add_argument("--out", required=True, help="output folder")

    p = sub.add_parser("report", help="HTML report (outliers, winning frequencies, JOD, significance) -> DIR/index.html")
    _add_input(p)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--method", default="thurstone", choices=["thurstone", "bt"])
    p.add_argument("--group-by", default="", help="blocks (default content[,group])")
    p.add_argument("--reference", default=None)
    p.add_argument("--bootstrap", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--keep-outliers", action="store_true", help="flag outliers but keep their votes")
    p.add_argument("--correction", default="holm", choices=["holm", "bh", "bonferroni", "none"])
    p.add_argument("--title", default=None)
    p.add_argument("--jnd", default=None, help="jnd.csv from `analysis jnd`: add the JND section (plots with CIs)")
    _add_outlier_opts(p)

    p = sub.add_parser("jnd", help="JND scale from AIC-3 plain + boosted triplet responses -> jnd.csv")
    p.add_argument("responses", help="AIC-3 zip or responses CSV, or a lossarena triplet export (docs/analysis.md)")
    p.add_argument("--out", required=True, help="jnd.csv (side file <stem>_boosting.csv beside it)")
    p.add_argument("--experiment", default="both", choices=["btc", "ptc", "both"], help="zip only (default both)")
    p.add_argument("--trap-min", default="otsu", help="drop batches whose trap score is below this "
                   "(a number in [0, 1], 'otsu' (default) or 'none')")
    p.add_argument("--boost-groups", default="auto", choices=["auto", "content-codec", "codec", "content", "global"],
                   help="images sharing one boosting polynomial (default auto)")
    p.add_argument("--linear-boost", action="store_true", help="h(x) = g1 x instead of g1 x + g2 x^2")
    p.add_argument("--bootstrap", type=int, default=200, help="bootstrap replicates over participants (0 = no CIs)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--screening-out", default=None, help="also write the per-batch screening table (CSV)")
    p.add_argument("--report", default=None, help="also write an HTML report (JND plots with CIs) into this folder")
    p.add_argument("--bitrates", default=None, help="content,condition,bpp CSV: tie each (content, codec) to the RD "
                   "curve jnd = alpha*exp(-beta*bpp) (AIC-3's model) instead of free values")
    p.add_argument("--rd-levels", action="append", default=[], metavar="CODEC",
                   help="tie CODEC's images to alpha*exp(beta*level): only for a ladder equally spaced in bitrate")
    p.add_argument("--ci", default="participant", choices=["participant", "question"],
                   help="bootstrap unit: participants (default) or each triplet question's answers (AIC-3)")
    p.add_argument("--screen-by", default="experiment", choices=["experiment", "all"],
                   help="Otsu trap threshold per experiment (plain/boosted; default) or over all batches")
    p.add_argument("--anchors", default=None, help="jnd.csv of images whose value is known (an earlier study): "
                   "held fixed in the fit")

    p = sub.add_parser("convert", help="read a foreign format and write canonical votes.csv")
    p.add_argument("votes", nargs="?", help="input file or folder")
    p.add_argument("--format", default=None)
    p.add_argument("--duplicates", default="keep-all", choices=DUPLICATE_POLICIES)
    p.add_argument("--selection-means", default=None, choices=["condition_1", "condition_2"])
    p.add_argument("--experiment", default=None, choices=["btc", "ptc", "both"])
    p.add_argument("--out", help="votes.csv")
    p.add_argument("--list", action="store_true", help="list the formats")

    p = sub.add_parser("simulate", help="simulated votes (Thurstone observers + random responders) -> votes.csv")
    p.add_argument("--out", required=True)
    p.add_argument("--contents", type=int, default=3)
    p.add_argument("--observers", type=int, default=20)
    p.add_argument("--random", type=int, default=2, help="random responders")
    p.add_argument("--seed", type=int, default=0)
    return ap


def _jnd(args, quiet: bool) -> int:
    import numpy as np
    import pandas as pd

    from .jnd import fit_jnd, level_rates, read_responses, write_jnd

    t = args.trap_min.strip().lower()
    trap_min: float | str | None
    if t in ("otsu", "none"):
        trap_min = None if t == "none" else "otsu"
    else:
        try:
            trap_min = float(t)
        except ValueError:
            raise InputError(f"--trap-min: expected a number, 'otsu' or 'none', got '{args.trap_min}'") from None
    resp = read_responses(args.responses, experiment=args.experiment)
    rates = level_rates(resp, args.rd_levels) if args.rd_levels else {}
    if args.bitrates:
        from lossarena.data import schemas

        br = schemas.read_table(args.bitrates)
        for c in ("content", "condition", "bpp"):
            if c not in br.columns:
                raise InputError(f"{args.bitrates}: missing column {c}")
        bpp = pd.to_numeric(br["bpp"], errors="coerce")
        if bpp.isna().any():
            i = int(np.flatnonzero(bpp.isna().to_numpy())[0])
            raise InputError(f"{args.bitrates}: line {br['_line'].iloc[i]}: field 'bpp' is not a number")
        rates.update({(c, k): float(b) for c, k, b in zip(br["content"], br["condition"], bpp)})
    fixed = None
    if args.anchors:
        from .jnd import read_jnd

        fixed = read_jnd(args.anchors)
    fit = fit_jnd(resp, trap_min=trap_min, boost_groups=args.boost_groups, quadratic=not args.linear_boost,
                  bootstrap=args.bootstrap, seed=args.seed, rates=rates or None, progress=not quiet,
                  ci=args.ci, screen_by=args.screen_by, fixed=fixed)
    main_path, side = write_jnd(fit, args.out)
    if args.screening_out:
        Path(args.screening_out).parent.mkdir(parents=True, exist_ok=True)
        fit.screening.batches.to_csv(args.screening_out, index=False, float_format="%.6g")
    if args.report:
        from .jnd import write_jnd_report

        print(f"wrote {write_jnd_report(fit.scale, args.report, fit, title=f'JND scale: {Path(args.responses).name}')}")
    i = fit.info
    print(f"wrote {main_path} ({len(fit.scale)} images) and {side}: {i['used']} of {i['responses']} answers used, "
          f"{i['batches_dropped']} of {i['batches']} batches dropped (trap score < {i['screening']}), "
          f"{len(fit.boosting)} boosting group(s)")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    quiet = not sys.stderr.isatty()

    if args.cmd == "convert":
        from .readers import FORMATS
        from .votes import write_votes

        if args.list or not args.votes:
            for name, (_, help_) in FORMATS.items():
                print(f"{name:12s} {help_}")
            return 0
        if not args.out:
            raise InputError("convert needs --out votes.csv")
        votes = _read(args)
        write_votes(votes, args.out)
        print(f"wrote {args.out} ({len(votes)} rows)")
        return 0

    if args.cmd == "simulate":
        from .simulate import demo_truth, simulate_votes
        from .votes import write_votes

        v = simulate_votes(demo_truth(args.contents, seed=args.seed), n_observers=args.observers,
                           n_random=args.random, seed=args.seed)
        write_votes(v, args.out)
        print(f"wrote {args.out} ({len(v)} votes)")
        return 0

    if args.cmd == "jnd":
        return _jnd(args, quiet)

    votes = _read(args)

    if args.cmd == "outliers":
        from .outliers import filter_votes, score_outliers, write_outliers

        res = score_outliers(votes, progress=not quiet, **_outlier_kw(args))
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        write_outliers(res, args.out, details=args.details)
        flagged = res.loc[res["is_outlier"], "participant"].tolist()
        print(f"wrote {args.out}: {len(flagged)} of {len(res)} participants flagged"
              + (f" ({', '.join(map(str, flagged[:20]))}{' ...' if len(flagged) > 20 else ''})" if flagged else ""))
        if args.filtered_out:
            from .votes import write_votes

            kept = filter_votes(votes, res)
            write_votes(kept, args.filtered_out)
            print(f"wrote {args.filtered_out} ({len(kept)} votes kept of {len(votes)})")
        return 0

    if getattr(args, "outliers", None):
        from .outliers import filter_votes, read_outliers

        votes = filter_votes(votes, read_outliers(args.outliers))
        print(f"removed participants flagged in {args.outliers}: {len(votes)} votes left", file=sys.stderr)

    if args.cmd == "scale":
        from .scaling import parse_group_by, scale_votes

        kw = {"prior": args.prior} if args.method == "thurstone" else {"alpha": args.bt_alpha}
        res = scale_votes(votes, args.method, parse_group_by(args.group_by, votes), reference=args.reference,
                          bootstrap=args.bootstrap, seed=args.seed, progress=not quiet, **kw)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        res.to_csv(args.out, index=False, float_format="%.6g")
        ndis = int((res["component"] != 0).sum())
        print(f"wrote {args.out} ({len(res)} rows, {args.method}"
              + (f"; {ndis} condition(s) outside their group's main component, see column 'component'" if ndis else "")
              + ")")
        return 0

    if args.cmd == "matrices":
        from .matrices import (
            overall_winning_frequency,
            pairwise_tests,
            preference_matrices,
            winning_frequency,
        )
        from .scaling import parse_group_by

        blocks = parse_group_by(args.group_by, votes) or None
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        wf = winning_frequency(votes, blocks, normalise=args.normalise)
        wf.to_csv(out / "winning_frequency.csv", index=False, float_format="%.6g")
        overall_winning_frequency(wf).to_csv(out / "winning_frequency_overall.csv", index=False, float_format="%.6g")
        tests = pairwise_tests(votes, blocks, correction=args.correction, alpha=args.alpha)
        tests.to_csv(out / "pairwise_tests.csv", index=False, float_format="%.6g")
        mats = preference_matrices(votes, blocks, per_subject=True)
        rows = []
        for level, d in (("group", mats["group"]), ("subject", mats["subjects"])):
            for key, (conds, m) in d.items():
                block, who = (key, "") if level == "group" else key
                for i, a in enumerate(conds):
                    for j, b in enumerate(conds):
                        if m[i, j]:
                            rows.append(["/".join(map(str, block)), who, a, b, m[i, j]])
        import pandas as pd

        pd.DataFrame(rows, columns=["block", "participant", "preferred", "over", "votes"]).to_csv(
            out / "preference_matrices.csv", index=False, float_format="%.6g")
        print(f"wrote {out}/winning_frequency.csv, winning_frequency_overall.csv, pairwise_tests.csv, "
              f"preference_matrices.csv ({int(tests['significant'].sum())} of {len(tests)} pairs significant, "
              f"{args.correction})")
        return 0

    if args.cmd == "report":
        from .report import build_report
        from .scaling import parse_group_by

        index = build_report(
            votes, args.out, title=args.title, block_by=parse_group_by(args.group_by, votes) or None,
            method=args.method, bootstrap=args.bootstrap, seed=args.seed, reference=args.reference,
            remove_outliers=not args.keep_outliers, outlier_kw=_outlier_kw(args), correction=args.correction,
            progress=not quiet, jnd=args.jnd,
        )
        print(f"wrote {index}")
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
