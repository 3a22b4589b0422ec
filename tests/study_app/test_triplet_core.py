"""The triplet design (JPEG AIC-3) without Streamlit: boosts, amplification formula, build, sampling
proportions, traps and bias triplets, the vote mapping, the export columns, and the export feeding
`lossarena analysis jnd` end to end with observers answering from a hidden JND scale."""

from __future__ import annotations

import csv
from collections import Counter

import numpy as np
import pytest
import study_fixtures
from lossarena.data.schemas import REFERENCE
from lossarena.study_app.cli import main as study_main
from lossarena.study_app.core.config import TripletSettings, load_config
from lossarena.study_app.core.export import TRIPLET_COLUMNS, export_votes
from lossarena.study_app.core.session import StudyRuntime
from lossarena.study_app.core.store import open_store
from lossarena.study_app.core.triplets import (
    KIND_BIAS,
    KIND_TRAP,
    amplify,
    amplify_alpha,
    parse_boosts,
    participant_plan,
)
from PIL import Image

from lossarena.errors import UnknownNameError

stimuli_dir = study_fixtures.stimuli_dir
make_study = study_fixtures.make_study


def _triplet_study(make_study, **kw):
    return make_study(design="triplet", trials_per_participant=kw.pop("trials", 30), n_practice=1,
                      triplet=TripletSettings(**kw))


def _load(p):
    return np.asarray(Image.open(p).convert("RGB"))


def test_amplify_formula():
    ref = np.array([[[100, 250, 3]]], dtype=np.uint8)
    test = np.array([[[110, 254, 0]]], dtype=np.uint8)
    assert amplify(ref, test, 2.0, "clip").tolist() == [[[120, 255, 0]]]  # 100+2*10, clipped 258, clipped -3
    assert amplify(ref, test, 1.0, "clip").tolist() == test.tolist()
    assert amplify(ref, test, 3.0, "clip").tolist() == [[[130, 255, 0]]]
    assert amplify(ref, ref, 4.0).tolist() == ref.tolist()  # the reference is its own amplification
    # reduce (default): blue is already at 0 (3 -> 0), so this pixel cannot be amplified at all
    assert amplify(ref, test, 2.0).tolist() == test.tolist()
    with pytest.raises(ValueError, match="expected"):
        amplify(ref, test[..., :2], 2.0)
    with pytest.raises(ValueError, match="gain"):
        amplify(ref, test, 0.5)
    with pytest.raises(ValueError, match="clamp"):
        amplify(ref, test, 2.0, "wrap")


def test_amplify_reduces_alpha_per_pixel_instead_of_clipping():
    # pixel 1: d = (8, 20, -8); room per channel (255-100)/8 = 19.375, (255-200)/20 = 2.75, 60/8 = 7.5
    #   -> alpha_max 2.75; gain 3 -> alpha 2.75: (100+22, 200+55, 60-22) = (122, 255, 38); plain clipping
    #   would give (124, 255 [260 clipped], 36): green clipped, red and blue amplified 3x -> a hue shift
    # pixel 2: d = (2, -2, 0), room 122.5 / 5 / inf -> alpha 3 as asked: (16, 4, 10) either way
    ref = np.array([[[100, 200, 60], [10, 10, 10]]], dtype=np.uint8)
    test = np.array([[[108, 220, 52], [12, 8, 10]]], dtype=np.uint8)
    assert amplify_alpha(ref, test, 3.0).tolist() == [[2.75, 3.0]]
    assert amplify(ref, test, 3.0).tolist() == [[[122, 255, 38], [16, 4, 10]]]
    assert amplify(ref, test, 3.0, "clip").tolist() == [[[124, 255, 36], [16, 4, 10]]]
    # the amplified difference keeps its direction: out - ref = 2.75 * (test - ref) exactly
    assert (amplify(ref, test, 3.0)[0, 0].astype(int) - ref[0, 0]).tolist() == [22, 55, -22]
    # never clips: on random images every reduced pixel lies on the segment ref -> ref + gain * d
    rng = np.random.default_rng(0)
    r = rng.integers(0, 256, (64, 64, 3)).astype(np.uint8)
    t = np.clip(r.astype(int) + rng.integers(-40, 41, r.shape), 0, 255).astype(np.uint8)
    a = amplify_alpha(r, t, 2.0)
    assert a.min() >= 1.0 and a.max() == 2.0 and (a < 2.0).any()
    out = r + a[..., None] * (t.astype(float) - r)
    assert out.min() >= -1e-9 and out.max() <= 255 + 1e-9  # float round-off only
    assert np.array_equal(amplify(r, t, 2.0), np.rint(out).astype(np.uint8))


def test_boost_names_and_did_you_mean():
    assert parse_boosts("amplify, flicker,zoom") == ("zoom", "flicker", "amplify")
    assert parse_boosts("none") == () and parse_boosts("") == ()
    assert parse_boosts(["Zooming"]) == ("zoom",)
    with pytest.raises(UnknownNameError, match="did you mean 'flicker'"):
        parse_boosts("zoom,flikcer")


def test_plan_proportions_exact():
    for seed in range(5):
        plan = participant_plan(np.random.default_rng(seed), 40, 0.1, 0.05, 0.25, 0.2, True)
        kinds = Counter(s.kind for s in plan)
        assert len(plan) == 40 and kinds[KIND_TRAP] == 4 and kinds[KIND_BIAS] == 2  # 4 = 40*0.1, 2 = 36*0.05
        assert sum(not s.boosted for s in plan) == 10  # plain share 0.25
        assert sum(s.cross for s in plan) == round(34 * 0.2)
        assert plan[0].kind == plan[1].kind == "trial"  # never a trap or bias first
    assert all(not s.boosted for s in participant_plan(np.random.default_rng(0), 10, 0, 0, 0.0, 0, False))


def test_build_writes_boosted_stimuli(make_study):
    cfg = _triplet_study(make_study, zoom=2, amplify_gain=2.0)
    t = cfg.triplet
    assert cfg.design == "triplet" and cfg.allow_tie and cfg.sampler == "aic3"
    assert t.boosts == ["zoom", "flicker", "amplify"]
    for g in cfg.groups:
        info = t.contents[g.content]
        assert REFERENCE in g.conditions and info.levels[REFERENCE] == 0
        assert all("_" in c for c in g.conditions if c != REFERENCE)  # <codec>_<target bpp>
        x, y, w, h = info.zoom_region
        ref = _load(cfg.dir / g.conditions[REFERENCE])
        assert (w, h) == (ref.shape[1] // 2, ref.shape[0] // 2)
        bref = _load(cfg.dir / info.boosted[REFERENCE])
        assert np.array_equal(bref, ref[y:y + h, x:x + w])  # zoomed reference: a plain crop of it
        for c, rel in g.conditions.items():
            if c == REFERENCE:
                continue
            want = amplify(ref, _load(cfg.dir / rel), 2.0)[y:y + h, x:x + w]
            assert np.array_equal(_load(cfg.dir / info.boosted[c]), want), c
        # traps: the lowest bitrate of each codec, the most distorted first
        assert info.traps and all(info.levels[c] == max(info.levels.values()) for c in info.traps[:1])
    # a second load round-trips the nested settings
    again = load_config(cfg.dir)
    assert again.triplet.contents[cfg.groups[0].content].levels == t.contents[cfg.groups[0].content].levels


def test_lanczos_zoom_files_and_presentation(make_study):
    from lossarena.study_app.core.triplets import presentation

    cfg = _triplet_study(make_study, zoom=2, amplify_gain=2.0, zoom_resample="lanczos", timing="aic3")
    t = cfg.triplet
    for g in cfg.groups:
        info = t.contents[g.content]
        x, y, w, h = info.zoom_region
        ref = _load(cfg.dir / g.conditions[REFERENCE])
        for c, rel in g.conditions.items():
            src = ref if c == REFERENCE else amplify(ref, _load(cfg.dir / rel), 2.0)
            want = Image.fromarray(np.ascontiguousarray(src[y:y + h, x:x + w])).resize((2 * w, 2 * h), Image.LANCZOS)
            got = _load(cfg.dir / info.boosted[c])
            assert got.shape == (2 * h, 2 * w, 3) and np.array_equal(got, np.asarray(want)), c
        # Lanczos, not nearest neighbour: the file is not the region repeated 2 x 2
        assert not np.array_equal(_load(cfg.dir / info.boosted[REFERENCE]),
                                  ref[y:y + h, x:x + w].repeat(2, 0).repeat(2, 1))
    boosted = presentation(t, t.label)
    assert boosted == {"boost": t.label, "zoom": 1, "zoom_resample": "lanczos", "flicker_ms": 100,
                       "show_ms": 8000, "blank_ms": 3000}
    assert presentation(t, "plain") == {"boost": "plain", "zoom": 1, "zoom_resample": "", "flicker_ms": 0,
                                        "window_ms": 30000, "min_toggles": 1, "toggle_min_ms": 500}
    again = load_config(cfg.dir).triplet
    assert (again.zoom_resample, again.timing, again.amplify_clamp) == ("lanczos", "aic3", "reduce")
    t.zoom_resample, t.timing = "nearest", "free"
    assert presentation(t, t.label) == {"boost": t.label, "zoom": 2, "zoom_resample": "nearest", "flicker_ms": 100}


def test_hostile_triplet_config_is_one_line(make_study, tmp_path):
    import shutil

    import yaml

    from lossarena.errors import InputError

    cfg = _triplet_study(make_study)
    c0 = cfg.groups[0].content
    for path, value in ((("triplet", "contents", c0, "levels"), 3), (("triplet", "contents", c0, "traps"), ["../x"]),
                        (("triplet", "contents"), "junk"), (("triplet", "zoom"), 99), (("triplet",), 5),
                        (("design",), "tri"), (("triplet", "contents", c0, "boosted"), {"reference": 1}),
                        (("triplet", "timing"), "aic4"), (("triplet", "zoom_resample"), ["x"]),
                        (("triplet", "amplify_clamp"), None), (("triplet", "btc_show_ms"), -1),
                        (("triplet", "ptc_toggle_min_ms"), "500"), (("toggle",), False)):
        d = tmp_path / f"s{abs(hash(path)) % 10**6}"
        shutil.copytree(cfg.dir, d)
        y = yaml.safe_load((d / "study.yaml").read_text())
        node = y
        for k in path[:-1]:
            node = node[k]
        node[path[-1]] = value
        if path == ("toggle",):
            y["triplet"]["timing"] = "aic3"  # aic3 timing needs toggles for the plain triplets
        (d / "study.yaml").write_text(yaml.safe_dump(y))
        with pytest.raises(InputError, match="study.yaml"):
            load_config(d)


def test_triplets_issued_as_planned(make_study, tmp_path):
    cfg = _triplet_study(make_study, trap_rate=0.1, bias_rate=0.1, plain_fraction=0.5, cross_fraction=0.3)
    rt = StudyRuntime(cfg, open_store(f"sqlite:///{tmp_path / 'v.sqlite'}"))
    sides = Counter()
    for i in range(4):
        pid = f"P{i}"
        study_fixtures.to_trials(rt, pid)
        rows = []
        while (tr := rt.current_pair(pid)) is not None:
            rows.append(tr)
            assert tr.pivot_path and rt.stimulus_file(tr.pivot_path).is_file()
            rt.vote(pid, tr.seq, "left", response_time_ms=2000)
        assert len(rows) == 30 and rt.stage(pid) == "done"
        kinds = Counter(r.kind for r in rows)
        assert kinds["trap"] == 3 and kinds["bias"] == 3  # 30*0.1, 27*0.1
        assert sum(r.boost == "plain" for r in rows) == 15
        info = cfg.triplet.contents
        for r in rows:
            if r.kind == "trap":
                assert {r.left, r.right} - {REFERENCE} <= set(info[r.content].traps) and REFERENCE in (r.left, r.right)
            elif r.kind == "bias":
                assert r.left == r.right != REFERENCE
            else:
                assert r.left != r.right
            if r.boost != "plain":
                assert r.boost == "zoom,flicker,amplify" and r.left_path.startswith("boosted/")
            else:
                assert r.left_path.startswith("stimuli/")
            if r.kind == "trap":
                sides[r.left == REFERENCE] += 1
        keys = [(r.kind, r.content, r.boost, frozenset((r.left, r.right))) for r in rows]
        assert len(keys) == len(set(keys))  # never the same triplet twice
        normal = [r for r in rows if r.kind == "trial"]
        cross = [r for r in normal if len({info[r.content].codecs[c] for c in (r.left, r.right)} - {REFERENCE}) == 2]
        assert len(cross) == round(len(normal) * 0.3)
    assert sides[True] > 0 and sides[False] > 0  # left/right randomised
    votes = rt.store.all_votes(cfg.study_id, kind=None)
    v = votes[0]  # "left" = the left image differs more: the winner (closer) is the right one
    assert v["winner"] == v["condition_b"] and v["client"]["answer"] == "left"
    rt.store.dispose()


def test_export_columns_and_flags(make_study, tmp_path):
    cfg = _triplet_study(make_study, trap_rate=0.1, bias_rate=0.1)
    db = f"sqlite:///{tmp_path / 'v.sqlite'}"
    rt = StudyRuntime(cfg, open_store(db))
    study_fixtures.to_trials(rt, "E1")
    n = 0
    while (tr := rt.current_pair("E1")) is not None:
        side = ["left", "right", "tie"][n % 3] if tr.kind != "trap" else ("left" if tr.left != REFERENCE else "right")
        rt.vote("E1", tr.seq, side, response_time_ms=2500, client={"dpr": 1.0, "toggles": 2, "reloads": 0})
        n += 1
    # the admin page: progress per presentation, the downloads in the triplet format
    from lossarena.study_app.core.admin import participants_table, progress_table
    from lossarena.study_app.core.export import export_text

    pt = progress_table(rt)
    assert set(pt["group"]) == {"plain", "zoom,flicker,amplify"} and pt["comparisons"].sum() > 0
    assert export_text(rt.store, cfg, include_flagged=True).splitlines()[0] == ",".join(TRIPLET_COLUMNS)
    assert participants_table(rt)["trials"].tolist() == [27]  # 30 minus the 3 traps
    rt.store.dispose()
    out = tmp_path / "triplets.csv"
    assert study_main(["export", str(cfg.dir), "--db", db, "--out", str(out), "--design", "triplet"]) == 0
    rows = list(csv.DictReader(open(out)))
    assert tuple(rows[0]) == TRIPLET_COLUMNS
    assert len(rows) == n == 30
    assert {r["boost"] for r in rows} == {"plain", "zoom,flicker,amplify"}
    assert sum(r["is_trap"] == "1" for r in rows) == 3 and sum(r["is_bias"] == "1" for r in rows) == 3
    for r in rows:
        assert r["winner"] in (r["condition_a"], r["condition_b"], "tie")
        if r["answer"] == "left":
            assert r["winner"] == r["condition_b"]
        elif r["answer"] == "right":
            assert r["winner"] == r["condition_a"]
        else:
            assert r["answer"] == "notsure" and r["winner"] == "tie"
        if r["is_trap"] == "1":
            assert r["winner"] == REFERENCE  # answered right: the distorted side named
        assert r["toggles"] == "2" and r["batch"] == r["participant"] == "E1"
    assert study_main(["export", str(cfg.dir), "--db", db, "--out", str(out), "--design", "pairwise"]) == 2


@pytest.mark.slow
def test_export_feeds_analysis_jnd_and_recovers_the_order(make_study, tmp_path):
    from lossarena.analysis.cli import main as analysis_main
    from lossarena.study_app.core.simulate_triplets import simulate_triplets
    from scipy.stats import spearmanr

    cfg = _triplet_study(make_study, trials=40, plain_fraction=0.5, trap_rate=0.05, bias_rate=0.05)
    db = f"sqlite:///{tmp_path / 'v.sqlite'}"
    res = simulate_triplets(cfg.dir, db, participants=16, seed=3)
    assert not res.errors and res.answers == 16 * 40
    out, jnd = tmp_path / "export.csv", tmp_path / "jnd.csv"
    export_votes(cfg.dir, db, out)
    assert analysis_main(["jnd", str(out), "--out", str(jnd), "--bootstrap", "0", "--trap-min", "none",
                          "--boost-groups", "global"]) == 0
    got = {(r["content"], r["condition"]): float(r["jnd"]) for r in csv.DictReader(open(jnd))}
    keys = sorted(k for k in res.truth if k[1] != REFERENCE)
    assert set(got) == set(keys)
    # the recovered order of every codec's levels is the hidden one (each level at least 0.48 JND apart)
    info = cfg.triplet.contents
    pairs = [(k1, k2) for k1 in keys for k2 in keys if k1[0] == k2[0] and k1 != k2
             and info[k1[0]].codecs[k1[1]] == info[k1[0]].codecs[k2[1]]
             and info[k1[0]].levels[k1[1]] < info[k1[0]].levels[k2[1]]]
    assert pairs and all(got[a] < got[b] for a, b in pairs), [(a, b, got[a], got[b]) for a, b in pairs]
    assert all(v > 0 for v in got.values())  # every test image is further from the reference than itself
    # across codecs too: images closer than ~0.2 JND may swap with this many answers
    rho = spearmanr([res.truth[k] for k in keys], [got[k] for k in keys]).statistic
    assert rho > 0.8, rho


def test_cli_build_and_bad_input(stimuli_dir, tmp_path, capsys):
    out = tmp_path / "st"
    assert study_main(["build", str(stimuli_dir), "--out", str(out), "--design", "triplet", "--crop", "256x256",
                       "--trials", "20", "--boost", "zoom,amplify", "--plain-fraction", "0.3"]) == 0
    text = capsys.readouterr().out
    assert "triplet design" in text and "plain 0.3" in text and "(zoom,amplify)" in text
    assert "gain 2 (reduce), zoom resampling nearest, timing free" in text
    assert load_config(out).triplet.boosts == ["zoom", "amplify"]
    cases = [(["--design", "tripplet"], "did you mean 'triplet'"),
             (["--design", "triplet", "--boost", "flikcer"], "did you mean 'flicker'"),
             (["--design", "triplet", "--crop", "600x600"], "three crops do not fit"),
             (["--design", "triplet", "--plain-fraction", "1.5"], "--plain-fraction 1.5"),
             (["--design", "triplet", "--zoom", "0"], "--zoom 0"),
             (["--design", "triplet", "--timing", "aic"], "--timing 'aic'"),
             (["--design", "triplet", "--zoom-resample", "bicubic"], "--zoom-resample 'bicubic'"),
             (["--design", "triplet", "--amplify-clamp", "wrap"], "--amplify-clamp 'wrap'"),
             (["--design", "triplet", "--sampler", "aic"], "did you mean 'aic3'")]
    assert study_main(["plan", str(out)]) == 2 and "pairwise design only" in capsys.readouterr().err
    for extra, msg in cases:
        rc = study_main(["build", str(stimuli_dir), "--out", str(tmp_path / "bad"), *extra])
        err = capsys.readouterr().err
        assert rc == 2 and msg in err and "Traceback" not in err, (extra, err)
