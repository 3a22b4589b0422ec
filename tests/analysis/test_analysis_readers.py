"""Canonical votes validation, duplicates, and the readers for the shared pairwise datasets."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from lossarena.analysis import find_duplicates, read_any, read_votes, votes_from_counts, write_votes
from lossarena.analysis.cli import main as cli_main
from lossarena.analysis.votes import encode_votes, prepare_votes

from lossarena.errors import InputError
from lossarena.paths import require_shared

HEADER = "participant,content,condition_a,condition_b,winner\n"


def _write(tmp_path, text, name="votes.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.mark.parametrize(
    "row, message",
    [
        ("p1,c,a,b,x", "line 3: field 'winner' is 'x', expected 'a', 'b' or 'tie'"),
        ("p1,c,a,a,a", "line 3: field 'condition_b': both conditions are 'a'"),
        ("p1,,a,b,a", "line 3: field 'content' is empty"),
        ("p1,c,tie,b,b", "line 3: field 'condition_a': 'tie' is reserved"),
        ("p1,c,TIE,b,b", "line 3: field 'condition_a': 'TIE' is reserved"),
        ("p1,c,a,b,a,extra", "line 3: expected 5 fields"),
    ],
)
def test_bad_row_names_file_and_line(tmp_path, row, message):
    p = _write(tmp_path, HEADER + "p0,c,a,b,b\n" + row + "\n")
    with pytest.raises(InputError) as e:
        read_votes(p)
    assert str(p) in str(e.value) and message in str(e.value)


def test_missing_column_and_cli_exit_code(tmp_path, capsys):
    p = _write(tmp_path, "participant,content,condition_a,winner\np,c,a,a\n")
    with pytest.raises(InputError, match="missing column"):
        read_votes(p)
    from lossarena.pipeline.cli import main as lossarena_main

    assert lossarena_main(["analysis", "scale", str(p), "--out", str(tmp_path / "s.csv")]) == 2
    assert "missing column" in capsys.readouterr().err


def test_duplicate_policies(tmp_path):
    text = HEADER + "p1,c,a,b,a\np1,c,b,a,b\np2,c,a,b,a\np1,c,a,c,c\n"
    p = _write(tmp_path, text)
    v = read_votes(p)
    rep = v.attrs["duplicates"]
    assert rep.n_duplicate_votes == 1 and rep.n_keys == 1 and len(v) == 4
    assert read_votes(p, duplicates="keep-first")["winner"].tolist() == ["a", "a", "c"]
    assert read_votes(p, duplicates="keep-last")["winner"].tolist() == ["b", "a", "c"]
    with pytest.raises(InputError, match="line 3: field .participant.: duplicate vote"):
        read_votes(p, duplicates="error")
    assert find_duplicates(read_votes(p, duplicates="keep-first")).n_duplicate_votes == 0


def test_roundtrip_keeps_optional_columns(tmp_path):
    df = pd.DataFrame({"participant": ["p"], "content": ["c"], "condition_a": ["a"], "condition_b": ["b"],
                       "winner": ["tie"], "group": ["low"], "response_time_ms": [812], "timestamp": ["t0"]})
    out = write_votes(prepare_votes(df), tmp_path / "v.csv")
    back = read_votes(out)
    assert list(back.columns[:8]) == ["participant", "content", "condition_a", "condition_b", "winner", "group",
                                      "response_time_ms", "timestamp"]
    assert back["response_time_ms"].iloc[0] == 812


def test_pwcmp_both_orientations():
    new = read_any(require_shared("pairwise", "pwcmp", "ex3_tmo_cmp_data.csv"))
    old = read_any(require_shared("pairwise", "pwcmp", "ex3_tmo_cmp_data_2022_for_ref_output.csv"))
    assert old.attrs["format"] == "pwcmp-2022" and len(new) == len(old) == 1213
    # SOURCE.txt: selection == 1 - is_A_selected -> the default reading gives the same winners
    assert (new["winner"].to_numpy() == old["winner"].to_numpy()).all()
    flipped = read_any(require_shared("pairwise", "pwcmp", "ex3_tmo_cmp_data_2022_for_ref_output.csv"),
                       selection_means="condition_1")
    assert (flipped["winner"] != old["winner"]).all()


def test_pwcmp_light_field_and_hdr_vdc():
    lf = read_any(require_shared("pairwise", "pwcmp", "lf_quality_pwcmps.csv"))
    assert lf.attrs["format"] == "pwcmp-lf" and len(lf) == 26580
    assert lf["participant"].nunique() == 29 and lf["content"].nunique() == 14
    assert lf["condition_a"].str.match(r"^[A-Za-z]+_\d+$").all()
    hdr = read_any(require_shared("pairwise", "hdr_vdc_pairwise"))
    assert hdr.attrs["format"] == "hdr-vdc" and len(hdr) == 12898 + 12864
    assert set(hdr["group"]) == {"bright", "dim"} and hdr["participant"].nunique() == 30
    row = hdr.iloc[0]  # observer7,RocketLeague,H_3840x2160_bright_near,M_1920x1080_bright_near,1
    assert row["winner"] == row["condition_a"] == "H_3840x2160_bright_near"


def test_jpeg_aic3_triplets_become_pairs_against_the_reference():
    v = read_any(require_shared("pairwise", "jpeg_aic3", "JPEG_AI_SDR_subjective_data.zip"), experiment="ptc")
    assert v.attrs["format"] == "aic3"
    assert v["participant"].str.startswith("PTC-").all() and v["participant"].nunique() == 73
    assert len(v) + v.attrs["dropped"]["skip"] + v.attrs["dropped"]["identical_sides"] == 10290
    assert (v["condition_a"] != v["condition_b"]).all()
    # the response names the MORE distorted image: against the reference, the reference must win mostly
    ref = v[(v["condition_a"] == "reference") | (v["condition_b"] == "reference")]
    decided = ref[ref["winner"] != "tie"]
    assert (decided["winner"] == "reference").mean() > 0.7
    # and a low distortion level beats a high one of the same codec
    lv = v[v["condition_a"].str.startswith("JPEG-AI_") & v["condition_b"].str.startswith("JPEG-AI_")]
    lv = lv[lv["winner"] != "tie"]
    la = lv["condition_a"].str[-2:].astype(int)
    lb = lv["condition_b"].str[-2:].astype(int)
    lw = np.where(lv["winner"] == lv["condition_a"], la, lb)
    assert (lw == np.minimum(la, lb)).mean() > 0.6  # fine-grained levels: 66 % (34 % if read backwards)
    assert {"is_trap", "response_time_ms", "timestamp"} <= set(v.columns)


def test_sureal_paired_comparison_json():
    p = require_shared("pairwise", "sureal_subjective", "json", "lukas_pc_dataset.json")
    v = read_any(p)
    assert v.attrs["format"] == "sureal-pc"
    assert len(v) == 2128 and v["participant"].nunique() == 31 and v["content"].nunique() == 5
    assert (v["winner"] == v["condition_a"]).all()
    assert v["content"].iloc[0] == "Caps" and v["condition_a"].iloc[0].startswith("Caps")


def test_sureal_reader_rejects_acr_data(tmp_path):
    p = tmp_path / "acr.json"
    p.write_text(json.dumps({"ref_videos": [{"content_id": 0, "content_name": "x"}],
                             "dis_videos": [{"asset_id": 0, "content_id": 0, "os": [3, 4, 5]}]}))
    with pytest.raises(InputError, match=r"dis_videos\[0\]\.os"):
        read_any(p, format="sureal-pc")


def test_count_matrices_mat_and_csv(tmp_path):
    mat = read_any(require_shared("pairwise", "motion_quality_20", "pairwise_comparison_matrices.mat"))
    assert mat["content"].nunique() == 6 and (mat["participant"] == "pooled").all()
    from scipy.io import loadmat

    raw = loadmat(require_shared("pairwise", "motion_quality_20", "pairwise_comparison_matrices.mat"))
    sub = mat[mat["content"] == "30degps_panorama"]
    enc = encode_votes(sub, [f"c{i + 1:02d}" for i in range(24)])
    np.testing.assert_array_equal(enc.counts(), raw["pwc_mat_30degps_panorama"].astype(float))

    m = np.array([[0, 3, 1.5], [1, 0, 2], [0.5, 0, 0]])
    df = pd.DataFrame(m, index=["a", "b", "c"], columns=["a", "b", "c"])
    p = tmp_path / "counts.csv"
    df.to_csv(p)
    v = read_any(p, format="counts")
    np.testing.assert_array_equal(encode_votes(v, ["a", "b", "c"]).counts(), m)
    bad = tmp_path / "bad.csv"
    bad.write_text(",a,b\na,0,x\nb,1,0\n")
    with pytest.raises(InputError, match="line 2: field 'b': not a number"):
        read_any(bad, format="counts")
    small = votes_from_counts(np.array([[0, 2], [1, 0]]), ["u", "v"])
    assert len(small) == 2 and small["count"].sum() == 3  # one row per ordered pair, never per vote


def test_cli_convert(tmp_path, capsys):
    out = tmp_path / "v.csv"
    assert cli_main(["convert", str(require_shared("pairwise", "pwcmp", "ex3_tmo_cmp_data.csv")), "--out", str(out)]) == 0
    v = read_votes(out)
    assert len(v) == 1213 and "session_id" in v.columns
    assert cli_main(["convert", "--list"]) == 0
    assert "aic3" in capsys.readouterr().out
