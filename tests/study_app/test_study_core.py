"""Study app core without Streamlit: manifest, build, security, display check, store, flow, export, CLI."""

from __future__ import annotations

import csv
import threading

import numpy as np
import pytest
import study_fixtures
import yaml
from lossarena.study_app.cli import main as study_main
from lossarena.study_app.core.build import choose_window, fits_side_by_side
from lossarena.study_app.core.config import load_config
from lossarena.study_app.core.display import CARD_WIDTH_MM, DisplayMeasurement, evaluate_display
from lossarena.study_app.core.export import COLUMNS, export_votes
from lossarena.study_app.core.manifest import read_manifest
from lossarena.study_app.core.security import (
    completion_code,
    safe_stimulus_path,
    validate_worker_id,
    verify_completion_code,
    worker_id_from_query,
)
from lossarena.study_app.core.session import StudyRuntime
from lossarena.study_app.core.simulate import run_participant, simulate, true_scores
from lossarena.study_app.core.store import normalise_url, open_store
from PIL import Image

from lossarena.errors import InputError, UnknownNameError

stimuli_dir = study_fixtures.stimuli_dir
make_study = study_fixtures.make_study


def _runtime(cfg, tmp_path, name="v.sqlite"):
    return StudyRuntime(cfg, open_store(f"sqlite:///{tmp_path / name}"))


# ---------------------------------------------------------------- manifest and build
def test_manifest_errors_name_file_line_field(tmp_path, stimuli_dir):
    rows = (stimuli_dir / "manifest.csv").read_text().splitlines()
    bad = tmp_path / "m1"
    bad.mkdir()
    (bad / "manifest.csv").write_text("content,condition,bpp,path\n")
    with pytest.raises(InputError, match="missing column.*target_bpp"):
        read_manifest(bad)
    bad2 = tmp_path / "m2"
    bad2.mkdir()
    lines = [rows[0], rows[1].replace("reference", "")]
    (bad2 / "manifest.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=r"line 2: field 'condition' is empty"):
        read_manifest(bad2)
    bad3 = tmp_path / "m3"
    bad3.mkdir()
    (bad3 / "manifest.csv").write_text(rows[0] + "\nx,jpeg,0.5,abc,nofile.png\n")
    with pytest.raises(InputError, match=r"line 2: field 'bpp'"):
        read_manifest(bad3)


def test_build_crops_same_window_fit_and_layout(make_study, stimuli_dir):
    cfg = make_study(sessions=2, n_practice=3)
    d = cfg.dir
    assert fits_side_by_side(cfg.crop) and fits_side_by_side((800, 640)) and not fits_side_by_side((1000, 640))
    windows = {r["content"]: r for r in csv.DictReader(open(d / "crops.csv"))}
    rows = read_manifest(stimuli_dir)
    ref_by_content = {r.content: np.asarray(Image.open(r.path).convert("RGB")) for r in rows if r.condition == "reference"}
    for g in cfg.groups:
        w = windows[g.content]
        x, y, cw, ch = int(w["x"]), int(w["y"]), int(w["width"]), int(w["height"])
        assert (cw, ch) == (min(320, ref_by_content[g.content].shape[1]), min(256, ref_by_content[g.content].shape[0]))
        for cond, rel in g.conditions.items():
            crop = np.asarray(Image.open(d / rel))
            src = next(r for r in rows if r.content == g.content and r.condition == cond and r.target_bpp == g.group)
            full = np.asarray(Image.open(src.path).convert("RGB"))
            np.testing.assert_array_equal(crop, full[y : y + ch, x : x + cw])  # same window, lossless
    # traps are much worse than the reference; practice pairs are obviously different
    for content, rel in cfg.traps.items():
        ref = np.asarray(Image.open(d / cfg.references[content])).astype(float)
        trap = np.asarray(Image.open(d / rel)).astype(float)
        assert np.mean((ref - trap) ** 2) > 50
    assert len(cfg.practice) == 3
    for q in cfg.practice:
        a, b = (np.asarray(Image.open(d / p)).astype(float) for p in (q.better, q.worse))
        assert np.mean((a - b) ** 2) > 50
    # sessions partition the groups
    flat = sorted(i for s in cfg.sessions for i in s)
    assert flat == list(range(len(cfg.groups))) and len(cfg.sessions) == 2
    again = load_config(d)
    assert again.groups == cfg.groups and again.secret == cfg.secret


def test_build_refuses_bad_crop_existing_study_and_unknown_sampler(make_study, stimuli_dir, tmp_path):
    from lossarena.study_app.core.build import build_study

    with pytest.raises(InputError, match="do not fit side by side"):
        make_study(crop=(1200, 600))
    with pytest.raises(UnknownNameError, match="did you mean 'adjacent'"):
        make_study(sampler="adjacnt")
    cfg = build_study(stimuli_dir, tmp_path / "again", crop=(200, 200), n_practice=1, progress=False)
    with pytest.raises(InputError, match="already exists"):
        build_study(stimuli_dir, cfg.dir, progress=False)
    assert build_study(stimuli_dir, cfg.dir, crop=(200, 200), progress=False, force=True).secret != cfg.secret


def test_choose_window_prefers_detail():
    img = np.zeros((100, 200, 3), np.uint8)
    img[40:80, 150:190] = np.random.default_rng(0).integers(0, 255, (40, 40, 3))
    x, y = choose_window(img, (50, 50), steps=16)
    assert x <= 150 and x + 50 >= 190 and y <= 40 and y + 50 >= 80


# ---------------------------------------------------------------- security
def test_worker_ids_validated():
    assert validate_worker_id("A1B2_c-3") == "A1B2_c-3"
    for bad in ["", "-x", "a b", "<script>", "x" * 65, "../etc", "é", None, 5]:
        with pytest.raises(InputError):
            validate_worker_id(bad)
    assert worker_id_from_query({"workerId": ["W1"]}) == ("W1", "mturk")
    assert worker_id_from_query({"PROLIFIC_PID": "5f0c"}) == ("5f0c", "prolific")
    assert worker_id_from_query({}) == (None, None)
    with pytest.raises(InputError):
        worker_id_from_query({"workerId": "<b>x</b>"})


def test_stimulus_paths_cannot_leave_the_study_folder(stimuli_dir, tmp_path):
    from lossarena.study_app.core.build import build_study

    cfg = build_study(stimuli_dir, tmp_path / "own", crop=(64, 64), n_practice=1, progress=False)
    ok = safe_stimulus_path(cfg.dir, cfg.groups[0].conditions[next(iter(cfg.groups[0].conditions))])
    assert ok.is_file()
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text("x")
    (cfg.dir / "link.png").symlink_to(secret_file)
    for rel in ["../secret.txt", str(secret_file), "stimuli/../../secret.txt", "link.png", "", "nope.png", "a\x00b"]:
        with pytest.raises(InputError):
            safe_stimulus_path(cfg.dir, rel)
    rt = _runtime(cfg, tmp_path)
    with pytest.raises(InputError):
        rt.stimulus_file("../secret.txt")


def test_completion_codes_verify_and_cannot_be_forged():
    c = completion_code("s3cret", "study1", "W1")
    assert verify_completion_code("s3cret", "study1", "W1", c)
    assert verify_completion_code("s3cret", "study1", "W1", c.lower().replace("-", " "))
    assert not verify_completion_code("s3cret", "study1", "W2", c)
    assert not verify_completion_code("s3cret", "study2", "W1", c)
    assert not verify_completion_code("other", "study1", "W1", c)
    flipped = ("A" if c[0] != "A" else "B") + c[1:]
    assert not verify_completion_code("s3cret", "study1", "W1", flipped)
    # no structure to exploit: codes of neighbouring ids share nothing systematic
    codes = {completion_code("s3cret", "study1", f"W{i}") for i in range(200)}
    assert len(codes) == 200


# ---------------------------------------------------------------- display check
@pytest.mark.parametrize(
    "m, ok",
    [
        (dict(screen_w=1920, screen_h=1080, dpr=1, card_px=323), True),  # ~24 in
        (dict(screen_w=1440, screen_h=900, dpr=2, card_px=200), True),  # retina 2880x1800, ~15 in
        (dict(screen_w=1366, screen_h=768, dpr=1, card_px=300), False),  # too few pixels
        (dict(screen_w=1280, screen_h=720, dpr=1.5, card_px=500), False),  # 1920x1080 but ~10 in
        (dict(screen_w=1080, screen_h=1920, dpr=1, card_px=323), True),  # portrait counts
    ],
)
def test_display_requirements(m, ok):
    chk = evaluate_display(DisplayMeasurement.from_dict(m))
    assert chk.ok is ok, chk
    px_per_mm = m["card_px"] / CARD_WIDTH_MM
    assert chk.diagonal_in == pytest.approx(np.hypot(m["screen_w"], m["screen_h"]) / px_per_mm / 25.4)


def test_display_measurement_rejects_garbage():
    for bad in [{}, {"screen_w": "1920", "screen_h": 1080, "dpr": 1, "card_px": 300},
                {"screen_w": float("nan"), "screen_h": 1080, "dpr": 1, "card_px": 300},
                {"screen_w": 1920, "screen_h": 1080, "dpr": 100, "card_px": 300}, None]:
        with pytest.raises(InputError):
            DisplayMeasurement.from_dict(bad)


# ---------------------------------------------------------------- store and flow
def test_url_mapping():
    assert normalise_url("postgresql://u@h:5/db") == "postgresql+psycopg://u@h:5/db"
    assert normalise_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_url("sqlite:///x.db") == "sqlite:///x.db"
    with pytest.raises(InputError, match="unsupported"):
        normalise_url("mongodb://h/db")
    with pytest.raises(InputError, match="in-memory"):
        open_store("sqlite://")


def test_flow_resume_no_repeats_and_duplicate_votes_impossible(make_study, tmp_path):
    cfg = make_study(sessions=1, trials_per_participant=8, traps_per_participant=2)
    rt = _runtime(cfg, tmp_path)
    pid = "W-resume"
    p = rt.join(pid)
    assert p["stage"] == "consent"
    with pytest.raises(InputError, match="not finished"):
        rt.completion_code(pid)
    study_fixtures.to_trials(rt, pid)
    assert rt.participant(pid)["training_correct"] == len(cfg.practice)
    first = rt.current_pair(pid)
    # a "reload": a new runtime on the same store sees the same open pair, not a new one
    rt2 = _runtime(cfg, tmp_path)
    assert rt2.current_pair(pid) == first
    r1 = rt.vote(pid, first.seq, "left")
    r2 = rt2.vote(pid, first.seq, "right")  # second tab answers the same pair: ignored
    assert (r1.status, r2.status) == ("new", "duplicate") and r2.winner == first.left
    seen = {(first.kind, first.content, first.group, frozenset((first.left, first.right)))}
    while (t := rt.current_pair(pid)) is not None:
        key = (t.kind, t.content, t.group, frozenset((t.left, t.right)))
        assert key not in seen
        seen.add(key)
        rt.vote(pid, t.seq, "right")
    votes = rt.store.participant_votes(cfg.study_id, pid)
    assert sum(v["kind"] == "trap" for v in votes) == 2
    assert sum(v["kind"] == "trial" for v in votes) == 8
    assert rt.stage(pid) == "done"
    assert verify_completion_code(cfg.secret, cfg.study_id, pid, rt.completion_code(pid))
    # the unique constraint itself: inserting the same pair again fails at the database
    from lossarena.study_app.core.store import votes as votes_t
    from sqlalchemy.exc import IntegrityError

    v = dict(votes[0])
    v["seq"] = 999
    with pytest.raises(IntegrityError), rt.store.write() as c:
        c.execute(votes_t.insert().values(**v))


def test_concurrent_tabs_never_duplicate(make_study, tmp_path):
    cfg = make_study(sessions=1, trials_per_participant=6, traps_per_participant=0)
    rt = _runtime(cfg, tmp_path)
    study_fixtures.to_trials(rt, "W-tabs")
    results = []

    def tab(side):
        r2 = _runtime(cfg, tmp_path)
        while (t := r2.current_pair("W-tabs")) is not None:
            results.append(r2.vote("W-tabs", t.seq, side).status)

    ths = [threading.Thread(target=tab, args=(s,)) for s in ("left", "right", "left")]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    votes = rt.store.participant_votes(cfg.study_id, "W-tabs")
    assert len(votes) == 6 == results.count("new")
    assert len({v["pair_key"] + v["content"] + v["grp"] for v in votes}) == 6


def test_refusals(make_study, tmp_path):
    cfg = make_study()
    rt = _runtime(cfg, tmp_path)
    rt.join("W-small")
    rt.consent("W-small")
    chk = rt.submit_display("W-small", dict(screen_w=1366, screen_h=768, dpr=1, card_px=300))
    assert not chk.ok and rt.stage("W-small") == "refused"
    assert "1366×768" in rt.participant("W-small")["refusal"]
    assert rt.current_pair("W-small") is None
    rt.join("W-no")
    rt.decline("W-no")
    assert rt.stage("W-no") == "refused"


def test_sessions_balanced(make_study, tmp_path):
    cfg = make_study(sessions=3)
    rt = _runtime(cfg, tmp_path)
    for i in range(7):
        rt.join(f"W{i}")
    counts = rt.store.session_counts(cfg.study_id)
    assert sorted(counts.values()) == [2, 2, 3]


# ---------------------------------------------------------------- simulate, export, CLI
def test_simulate_and_export_canonical_csv(make_study, tmp_path):
    cfg = make_study(sessions=1, trials_per_participant=6, traps_per_participant=1)
    db = f"sqlite:///{tmp_path / 's.sqlite'}"
    res = simulate(cfg.dir, db, participants=6, concurrency=3, seed=3, random_fraction=0.34, progress=False)
    assert res.errors == [] and res.votes_duplicate == 0
    assert res.votes_new == 6 * 7 and len(res.random_responders) == 2
    # the admin tables: progress adds up, random responders are among the flagged when analysis is there
    from lossarena.study_app.core import admin

    rt = StudyRuntime.open(cfg.dir, db)
    prog = admin.progress_table(rt)
    assert prog["comparisons"].sum() == 2 * 36
    parts = admin.participants_table(rt)
    assert len(parts) == 6 and set(parts["stage"]) == {"done"}
    assert {"zeta", "likelihood_score"} <= set(parts.columns)
    flagged = set(parts.loc[parts["flagged"], "participant"])
    assert flagged <= set(res.random_responders)  # only random responders break a QC rule here
    rt.store.dispose()
    out = export_votes(cfg.dir, db, tmp_path / "votes.csv", include_flagged=True)
    with open(out) as f:
        rows = list(csv.DictReader(f))
        assert tuple(csv.reader(open(out)).__next__()) == COLUMNS
    assert len(rows) == 36  # traps left out
    default = list(csv.DictReader(open(export_votes(cfg.dir, db, tmp_path / "clean.csv"))))
    assert len(default) == 36 - 6 * len(flagged) and not {r["participant"] for r in default} & flagged
    groups = {g.group for g in cfg.groups}
    for r in rows:
        assert r["winner"] in (r["condition_a"], r["condition_b"])
        assert r["group"] in groups and r["timestamp"].endswith("Z") and int(r["response_time_ms"]) > 0
    # readable by the analysis package's canonical reader when it is there
    try:
        from lossarena.analysis.votes import read_votes
    except ImportError:
        return
    df = read_votes(out)
    assert len(df) == 36


def test_simulated_thurstone_observers_agree_with_truth(make_study, tmp_path):
    cfg = make_study(sessions=1, sampler="full", trials_per_participant=0, traps_per_participant=0)
    rt = _runtime(cfg, tmp_path)
    truth = true_scores(rt, 1)
    for i in range(6):
        run_participant(rt, f"T{i}", 1, truth, is_random=False)
    agree = n = 0
    for v in rt.store.all_votes(cfg.study_id):
        qa = truth[(v["content"], v["grp"], v["condition_a"])]
        qb = truth[(v["content"], v["grp"], v["condition_b"])]
        if abs(qa - qb) > 1.0:
            n += 1
            agree += v["winner"] == (v["condition_a"] if qa > qb else v["condition_b"])
    assert n > 20 and agree / n > 0.7


def test_cli_build_simulate_export_verify(stimuli_dir, tmp_path, capsys):
    study = tmp_path / "st"
    assert study_main(["build", str(stimuli_dir), "--out", str(study), "--crop", "300x200", "--sessions", "1",
                       "--trials", "4", "--traps", "1", "--study-id", "cli-study", "--practice", "0"]) == 0
    out = capsys.readouterr()
    assert "study cli-study" in out.out and "secrets.yaml" in out.out and "/admin" in out.out
    assert "warning: the consent page states 10-15 minutes" in out.err  # 5 pairs are ~3 minutes
    assert yaml.safe_load((study / "study.yaml").read_text())["crop"] == [300, 200]
    assert "secret" not in yaml.safe_load((study / "study.yaml").read_text())
    assert study_main(["simulate", str(study), "--participants", "3", "--concurrency", "2", "--seed", "1",
                       "--random-fraction", "0", "--json"]) == 0
    summ = capsys.readouterr().out
    assert '"votes_new": 15' in summ
    assert study_main(["export", str(study), "--out", str(tmp_path / "v.csv"), "--include-flagged"]) == 0
    assert "12 votes" in capsys.readouterr().out
    cfg = load_config(study)
    rt = StudyRuntime.open(study)
    flagged = {p for p in ("SIM-1-0000", "SIM-1-0001", "SIM-1-0002") if rt.flags(p)}
    rt.store.dispose()
    assert study_main(["export", str(study), "--out", str(tmp_path / "v.csv")]) == 0
    assert f"{12 - 4 * len(flagged)} votes" in capsys.readouterr().out
    for w in ("SIM-1-0000", "SIM-1-0001", "SIM-1-0002"):
        code = completion_code(cfg.secret, "cli-study", w)
        rc = study_main(["verify-code", str(study), "--worker", w, "--code", code, "--check-finished"])
        assert rc == (4 if w in flagged else 0)
    assert study_main(["verify-code", str(study), "--worker", "SIM-1-0000", "--code", "AAAA-BBBB-CCCC-DDDD"]) == 1
    assert study_main(["verify-code", str(study), "--worker", "NOT-THERE", "--code",
                       completion_code(cfg.secret, "cli-study", "NOT-THERE"), "--check-finished"]) == 1
    assert study_main(["serve", str(study), "--print-command"]) == 0
    cmd = capsys.readouterr().out
    assert "streamlit run" in cmd and "app.py" in cmd and "LOSSARENA_STUDY_DB=" in cmd
    assert "--client.showErrorDetails none" in cmd and "--server.enableXsrfProtection true" in cmd
    # bad input: exit 2 with one line, no traceback
    assert study_main(["build", str(stimuli_dir), "--out", str(tmp_path / "x"), "--crop", "300x200",
                       "--completion-url", "javascript:alert(1)"]) == 2
    assert "--completion-url" in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_no_raw_html_anywhere_in_the_app():
    """Pages render text through Streamlit's escaping widgets only: no unsafe HTML, no st.html."""
    from pathlib import Path

    import lossarena.study_app as pkg

    root = Path(pkg.__file__).parent
    for f in list(root.glob("*.py")) + list((root / "pages").glob("*.py")):
        src = f.read_text()
        for bad in ("unsafe_allow_html", "st.html(", "components.html(", "st.markdown(f"):
            assert bad not in src, f"{f.name} uses {bad}"


# ---------------------------------------------------------------- quality control, experimenter, hardening
def _votes(sides, rt_ms=1500, traps_failed=0, traps=0):
    out = []
    for i, s in enumerate(sides):
        out.append({"participant": "P", "kind": "trial", "condition_a": "x", "condition_b": "y",
                    "winner": {"left": "x", "right": "y", "tie": "tie"}[s], "response_time_ms": rt_ms, "seq": i})
    for i in range(traps):
        bad = i < traps_failed
        out.append({"participant": "P", "kind": "trap", "condition_a": "reference", "condition_b": "trap",
                    "winner": "trap" if bad else "reference", "response_time_ms": rt_ms, "seq": 100 + i})
    return out


def test_qc_rules_each_flag_with_a_reason():
    from lossarena.study_app.core.config import QualityControl
    from lossarena.study_app.core.qc import flag_reasons

    qc = QualityControl()
    mixed = ["left", "right"] * 12
    assert flag_reasons(_votes(mixed, traps=2), qc) == []
    assert "trap pairs failed: 1 of 2" in flag_reasons(_votes(mixed, traps=2, traps_failed=1), qc)[0]
    assert "faster than 500 ms" in flag_reasons(_votes(mixed, rt_ms=40), qc)[0]
    biased = ["left"] * 18 + ["right"] * 2
    assert "side bias: left chosen in 90% of 20" in flag_reasons(_votes(biased), qc)[0]
    assert flag_reasons(_votes(["left"] * 19), qc) == []  # fewer than 20 answers: no side-bias verdict
    assert flag_reasons(_votes(["left"] * 10 + ["tie"] * 20 + ["right"] * 10), qc) == []  # ties do not count
    loose = QualityControl(max_trap_failures=1, min_view_ms=0)
    assert flag_reasons(_votes(mixed, rt_ms=40, traps=2, traps_failed=1), loose) == []


def test_secrets_and_database_owner_only_and_env_overrides(make_study, tmp_path, monkeypatch):
    import os
    import stat

    from lossarena.study_app.core.config import ENV_STUDY_SECRET

    cfg = make_study()
    assert stat.S_IMODE(os.stat(cfg.dir / "secrets.yaml").st_mode) == 0o600
    assert "secret" not in (cfg.dir / "study.yaml").read_text()
    db = tmp_path / "v.sqlite"
    rt = StudyRuntime.open(cfg.dir, f"sqlite:///{db}")
    study_fixtures.to_trials(rt, "W-perm")
    rt.store.dispose()
    for f in tmp_path.glob("v.sqlite*"):
        assert stat.S_IMODE(os.stat(f).st_mode) == 0o600, f
    # serve and verify-code read the same overrides: the value, or a file holding it
    monkeypatch.setenv(ENV_STUDY_SECRET, "from-env")
    assert load_config(cfg.dir).study_secret == "from-env"
    monkeypatch.delenv(ENV_STUDY_SECRET)
    (tmp_path / "s.txt").write_text("from-file\n")
    monkeypatch.setenv(ENV_STUDY_SECRET + "_FILE", str(tmp_path / "s.txt"))
    c2 = load_config(cfg.dir)
    assert c2.study_secret == "from-file"
    code = completion_code("from-file", cfg.study_id, "W-x")
    assert study_main(["verify-code", str(cfg.dir), "--worker", "W-x", "--code", code,
                       "--db", f"sqlite:///{tmp_path / 'empty.sqlite'}"]) == 0
    from lossarena.study_app.serve import serve_env

    assert serve_env(cfg.dir)[ENV_STUDY_SECRET + "_FILE"] == str(tmp_path / "s.txt")  # the child sees it too


def test_build_is_atomic_and_keeps_votes(stimuli_dir, tmp_path):
    from lossarena.study_app.core.build import build_study

    bad = tmp_path / "bad_stimuli"
    bad.mkdir()
    rows = (stimuli_dir / "manifest.csv").read_text().splitlines()
    (bad / "manifest.csv").write_text("\n".join(rows[:3] + [rows[3].replace(rows[3].split(",")[-1], "../../x.png")]))
    for r in rows[1:3]:
        p = r.split(",")[-1]
        (bad / p).parent.mkdir(parents=True, exist_ok=True)
        (bad / p).write_bytes((stimuli_dir / p).read_bytes())
    with pytest.raises(InputError):
        build_study(bad, tmp_path / "never", crop=(64, 64), progress=False)
    assert not (tmp_path / "never").exists() and not list(tmp_path.glob(".never*"))
    # an error half-way (a corrupt image) leaves nothing either
    broken = tmp_path / "broken"
    broken.mkdir()
    for r in rows[1:]:
        p = r.split(",")[-1]
        (broken / p).parent.mkdir(parents=True, exist_ok=True)
        (broken / p).write_bytes((stimuli_dir / p).read_bytes())
    (broken / "manifest.csv").write_text("\n".join(rows))
    last = rows[-1].split(",")[-1]
    (broken / last).write_bytes(b"not a png")
    with pytest.raises(InputError, match="cannot read image"):
        build_study(broken, tmp_path / "half", crop=(64, 64), progress=False)
    assert not (tmp_path / "half").exists() and not list(tmp_path.glob(".half*"))
    # a forced rebuild replaces the folder but never deletes collected votes
    cfg = build_study(stimuli_dir, tmp_path / "st", crop=(64, 64), n_practice=1, progress=False)
    rt = StudyRuntime.open(cfg.dir)
    rt.join("W-keep")
    rt.store.dispose()
    build_study(stimuli_dir, tmp_path / "st", crop=(64, 64), n_practice=1, progress=False, force=True)
    rt = StudyRuntime.open(tmp_path / "st")
    assert rt.store.get_participant(rt.study_id, "W-keep") is not None
    rt.store.dispose()


def test_serve_pins_security_options_over_a_hostile_config_file(make_study, tmp_path, monkeypatch):
    """The exact argv of `study serve`, resolved by Streamlit's own config code in a working directory
    whose .streamlit/config.toml tries to switch every protection off."""
    from lossarena.study_app.serve import PINNED_OPTIONS, serve_command
    from streamlit import config

    cfg = make_study()
    (tmp_path / ".streamlit").mkdir()
    (tmp_path / ".streamlit" / "config.toml").write_text(
        '[client]\nshowErrorDetails = "full"\n[server]\nenableXsrfProtection = false\nenableCORS = false\n'
        'enableAgentApi = true\nfileWatcherType = "auto"\nenableStaticServing = true\nrunOnSave = true\n'
        '[browser]\ngatherUsageStats = true\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("STREAMLIT_SERVER_ENABLE_XSRF_PROTECTION", "false")
    argv = serve_command(cfg.dir, 8599)
    flags = {}
    for i, a in enumerate(argv[: argv.index("--")]):
        if a.startswith("--") and "." in a:
            flags[a[2:]] = argv[i + 1]
    assert {"server.enableAgentApi", "client.showErrorDetails", "server.enableXsrfProtection"} <= set(flags)
    from streamlit.web import cli as st_cli

    def resolved(args):  # Streamlit's own CLI parser types the flags; its config code applies precedence
        ctx = st_cli.main_run.make_context("run", args)
        opts = {k.replace("_", ".", 1): v for k, v in ctx.params.items() if v is not None and k not in ("target", "args")}
        try:
            config.get_config_options(force_reparse=True, options_from_flags=opts)
            return {k: config.get_option(k) for k in PINNED_OPTIONS if k in config._config_options_template}
        finally:
            config.get_config_options(force_reparse=True)

    # the hostile file is read (without the pinned flags it wins) ...
    bare = resolved([argv[argv.index("run") + 1]])
    assert bare["client.showErrorDetails"] == "full" and bare["server.enableAgentApi"] is True
    # ... and the pinned command line overrides every one of its settings
    got = resolved(argv[argv.index("run") + 1:])
    assert got["client.showErrorDetails"] == "none"
    assert got["server.enableXsrfProtection"] is True and got["server.enableCORS"] is True
    assert got["server.enableAgentApi"] is False and got["server.fileWatcherType"] == "none"
    assert got["server.enableStaticServing"] is False and got["browser.gatherUsageStats"] is False


def test_db_password_never_in_argv(tmp_path, monkeypatch):
    from lossarena.study_app.serve import db_url_with_password

    with pytest.raises(InputError, match="password"):
        db_url_with_password("postgresql://u:secret@127.0.0.1:5432/db")
    monkeypatch.setenv("LOSSARENA_DB_PASSWORD", "p@ss word")
    url = db_url_with_password("postgresql://u@127.0.0.1:5432/db")
    assert url == "postgresql+psycopg://u:p%40ss%20word@127.0.0.1:5432/db"
    (tmp_path / "pw").write_text("from-file\n")
    assert ":from-file@" in db_url_with_password("postgresql://u@h/db", str(tmp_path / "pw"))
    assert db_url_with_password("sqlite:////x.sqlite") == "sqlite:////x.sqlite"


@pytest.mark.slow
@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_serve_stops_its_streamlit_server_on_signal(make_study, tmp_path, sig):
    """`lossarena study serve` in a terminal or under a supervisor: a signal to it stops the server it
    started (the Streamlit child runs in its own process group, which serve kills)."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    cfg = make_study()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "lossarena", "study", "serve", str(cfg.dir), "--port", str(port),
                             "--db", f"sqlite:///{tmp_path / 'v.sqlite'}"], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/_stcore/health"
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                if urllib.request.urlopen(url, timeout=2).status == 200:
                    break
            except OSError:
                time.sleep(0.3)
        else:
            pytest.fail("the server did not start")
        proc.send_signal(getattr(signal, sig))
        assert proc.wait(30) == 0
        time.sleep(0.5)
        with pytest.raises(OSError):
            urllib.request.urlopen(url, timeout=2)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # only our own test's group, if anything is left
        except ProcessLookupError:
            pass
