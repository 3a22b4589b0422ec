"""Seeded fuzzing of every file format a stranger can send (votes, count matrices, pwcmp, HDR-VDC, AIC-3
CSV and zip, sureal JSON, triplets, CLIC oracle, manifests, images, study configs): each mutated file
read through the real command must end in exit 0, or exit 2 with one ``error:`` line naming the file --
never a traceback. The cases come from ``tests/fuzz_cases.py``; ``benchmarks/fuzz.py`` runs thousands
more of them in subprocesses with time and memory limits.
"""

from __future__ import annotations

import pytest
from fuzz_cases import FORMATS, contract_violation, mat_with_bad_type_tag, png_with_size, run_case, write_case

# cases per format in `make test` (a few hundred in all; the long run is benchmarks/fuzz.py)
N_CASES = {"image": 16, "votes-scale": 12, "study-config": 25, "study-manifest": 25, "counts-mat": 6}  # .mat: a child each
DEFAULT_CASES = 20

# Formats read by code this area does not own; their owners were told (see the report). A strict xfail
# turns into a failure as soon as the reader is fixed, so the marker cannot outlive the bug.
KNOWN_BAD: dict[str, str] = {}


def _params():
    for name in FORMATS:
        marks = [pytest.mark.xfail(strict=True, reason=KNOWN_BAD[name])] if name in KNOWN_BAD else []
        yield pytest.param(name, id=name, marks=marks)


@pytest.mark.parametrize("name", list(_params()))
def test_fuzzed_files_end_in_exit_0_or_one_error_line(name, tmp_path):
    fmt = FORMATS[name]
    problems, rcs = [], []
    for seed in range(N_CASES.get(name, DEFAULT_CASES)):
        paths = write_case(fmt, seed, tmp_path / f"{seed}" / "in")
        try:
            o = run_case(fmt, paths, tmp_path / f"{seed}" / "out")
        except Exception as e:  # noqa: BLE001 -- any escaping exception is the bug this test looks for
            problems.append(f"seed {seed}: {type(e).__name__}: {str(e)[:200]}")
            continue
        rcs.append(o.rc)
        v = contract_violation(o, paths)
        if v:
            problems.append(f"seed {seed}: {v}")
    assert not problems, f"{name}: {len(problems)} case(s) broke the contract:\n" + "\n".join(problems[:10])
    assert 2 in rcs, f"{name}: no mutated case was refused; the mutations do not reach the reader"


def test_png_bomb_headers_refused_before_decoding(tmp_path, capsys):
    """The issue's bombs (10000² and 14000² 8-bit, 12000² 16-bit PNG headers): exit 2, one line, no decoding."""
    from lossarena.pipeline.cli import main

    ref = tmp_path / "ref.png"
    ref.write_bytes(png_with_size(4, 4))
    for w, h, bits in ((10000, 10000, 8), (14000, 14000, 8), (12000, 12000, 16)):
        p = tmp_path / f"bomb_{w}_{bits}.png"
        p.write_bytes(png_with_size(w, h, bits))
        assert p.stat().st_size < 200
        assert main(["metrics", "score", str(ref), str(p), "-m", "psnr"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and str(p) in err[0] and "limit of 50000000 pixels" in err[0], err


def test_pixel_limit_can_be_raised(tmp_path, monkeypatch):
    from lossarena.data.images import check_image

    from lossarena.errors import InputError

    p = tmp_path / "wide.png"
    p.write_bytes(png_with_size(3000, 2000))
    monkeypatch.setenv("LOSSARENA_MAX_IMAGE_PIXELS", "5000000")
    with pytest.raises(InputError, match="6000000 pixels, more than the limit of 5000000"):
        check_image(p)
    monkeypatch.setenv("LOSSARENA_MAX_IMAGE_PIXELS", "7000000")
    assert check_image(p) == (3000, 2000)
    assert check_image(p, max_pixels=10**8) == (3000, 2000)


def test_mat_file_that_crashes_scipy_is_a_clean_error(tmp_path, capsys):
    """Found by benchmarks/fuzz.py: scipy's .mat reader segfaults on an invalid type tag; it runs in a child."""
    from lossarena.pipeline.cli import main

    p = tmp_path / "counts.mat"
    p.write_bytes(mat_with_bad_type_tag())
    assert main(["analysis", "convert", str(p), "--format", "counts", "--out", str(tmp_path / "v.csv")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"error: {p}: cannot read as a MATLAB .mat file")
