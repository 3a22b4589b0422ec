"""Property-based tests of the interchange readers (hypothesis, derandomized: the same cases every run).

* any bytes read as a votes table give a DataFrame or a :class:`SchemaError` naming the file, never
  another exception;
* any valid votes table (names with commas, quotes, newlines, non-ASCII) survives write -> read unchanged;
* the tie rule: ``tie`` in any case is a tie in ``winner`` and refused as a condition name;
* a count matrix is read as counts (one row per ordered pair) and encodes back to the same matrix.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lossarena.analysis.readers import read_count_matrix
from lossarena.analysis.votes import encode_votes, prepare_votes, read_votes, write_votes
from lossarena.data.schemas import TIE, VOTES, SchemaError, read_table

FAST = settings(max_examples=80, derandomize=True, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

FEW = settings(FAST, max_examples=25)

_HEADER = b"participant,content,condition_a,condition_b,winner,count\n"


@FAST
@given(body=st.binary(max_size=400))
def test_any_bytes_give_a_table_or_a_schema_error(tmp_path, body):
    p = tmp_path / "votes.csv"
    p.write_bytes(_HEADER + body)
    try:
        df = read_table(p, VOTES)
    except SchemaError as e:
        msg = str(e)
        assert msg.startswith(str(p)) and "\n" not in msg and len(msg) < 600
        return
    assert len(df) >= 1 and list(df.columns[-1:]) == ["_line"]


names = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=12).map(str.strip).filter(
    lambda s: s and s.casefold() != TIE)


@FEW
@given(rows=st.lists(st.tuples(names, names, names, names, st.integers(0, 2), st.integers(1, 10**6)),
                     min_size=1, max_size=8))
def test_valid_votes_round_trip(tmp_path, rows):
    rows = [r for r in rows if r[2] != r[3]]
    if not rows:
        return
    df = pd.DataFrame({
        "participant": [r[0] for r in rows], "content": [r[1] for r in rows],
        "condition_a": [r[2] for r in rows], "condition_b": [r[3] for r in rows],
        "winner": [(r[2], r[3], "Tie")[r[4]] for r in rows], "count": [r[5] for r in rows],
    })
    out = write_votes(prepare_votes(df), tmp_path / "v.csv")
    back = read_votes(out)
    expect = df.assign(winner=[(r[2], r[3], TIE)[r[4]] for r in rows])
    for c in expect.columns:
        assert back[c].tolist() == expect[c].tolist(), c


@pytest.mark.parametrize("word", ["tie", "TIE", "Tie", " tIe "])
def test_one_tie_rule(tmp_path, word):
    p = tmp_path / "v.csv"
    p.write_text(f"participant,content,condition_a,condition_b,winner\np,c,a,b,{word}\n")
    assert read_votes(p)["winner"].tolist() == [TIE]
    p.write_text(f"participant,content,condition_a,condition_b,winner\np,c,{word.strip()},b,b\n")
    with pytest.raises(SchemaError, match="line 2: field 'condition_a': .* is reserved for ties"):
        read_votes(p)


@FEW
@given(m=st.integers(2, 6).flatmap(lambda n: st.lists(st.integers(0, 10**7), min_size=n * n, max_size=n * n)))
def test_count_matrix_is_read_as_counts(tmp_path, m):
    n = int(round(len(m) ** 0.5))
    mat = np.asarray(m, dtype=float).reshape(n, n)
    np.fill_diagonal(mat, 0)
    if mat.sum() == 0:
        return
    names_ = [f"c{i}" for i in range(n)]
    p = tmp_path / "counts.csv"
    pd.DataFrame(mat.astype(np.int64), index=names_, columns=names_).to_csv(p)
    v = read_count_matrix(p)
    assert len(v) <= n * (n - 1)  # one row per ordered pair, whatever the counts
    np.testing.assert_array_equal(encode_votes(v, names_).counts(), mat)


def test_huge_count_matrix_is_small_and_fast(tmp_path):
    """The issue's 24-byte file claiming 10,000,000 votes: two rows, not ten million."""
    p = tmp_path / "c.csv"
    p.write_text(",a,b\na,0,10000000\nb,0,0\n")
    assert p.stat().st_size == 24
    v = read_count_matrix(p)
    assert len(v) == 1 and v["count"].tolist() == [10_000_000]
    from lossarena.analysis.scaling import scale_votes

    res = scale_votes(v, "thurstone", [], bootstrap=0)
    assert res.set_index("condition").loc["a", "wins"] == 10_000_000


@pytest.mark.parametrize("cell, message", [
    ("inf", "finite"), ("1e400", "finite"), ("-1", "non-negative"), ("2.25", "integer or a half"),
    ("1e10", "LOSSARENA_MAX_COUNT"), ("x", "not a number"),
])
def test_bad_counts_name_line_and_field(tmp_path, cell, message):
    p = tmp_path / "c.csv"
    p.write_text(f",a,b\na,0,{cell}\nb,1,0\n")
    with pytest.raises(SchemaError, match=f"line 2: field 'b': .*{message}"):
        read_count_matrix(p)
