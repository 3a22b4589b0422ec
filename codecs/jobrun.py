"""``python -m lossarena.codecs.jobrun JOB.pkl``: run one pickled zoo job (a child of the local executor).

Exit codes: 0 trained or already complete, 2 bad input (one line), 3 missing weights, 1 other failure.
"""

from __future__ import annotations

import logging
import pickle
import sys


def main(argv=None) -> int:
    from lossarena.errors import LossarenaError

    from .jobs import run_job

    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m lossarena.codecs.jobrun JOB.pkl", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with open(argv[0], "rb") as f:  # written by this user's own zoo run (never a downloaded file)
        job = pickle.load(f)
    try:
        run_job(job)
    except LossarenaError as e:
        print(f"{job.name}: {e}", file=sys.stderr)
        return e.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
