"""The PostgreSQL store against a real server (started by tests/pg_server.py): the participant flow,
duplicate votes impossible, and two app processes ("replicas") serving the same participants at the
same time through one database lose and duplicate nothing."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections import Counter

import pytest
import study_fixtures
from lossarena.study_app.core.export import export_votes
from lossarena.study_app.core.session import StudyRuntime
from lossarena.study_app.core.simulate import simulate
from lossarena.study_app.core.store import PostgresStore, open_store
from pg_server import pg_server, pg_url  # noqa: F401  (fixtures)

stimuli_dir = study_fixtures.stimuli_dir
make_study = study_fixtures.make_study
pytestmark = pytest.mark.postgres


def test_postgres_flow_and_unique_votes(make_study, pg_url, tmp_path):  # noqa: F811
    cfg = make_study(sessions=1, trials_per_participant=5, traps_per_participant=1, n_practice=0)
    store = open_store(pg_url)
    assert isinstance(store, PostgresStore) and store.url.startswith("postgresql+psycopg://")
    rt = StudyRuntime(cfg, store)
    study_fixtures.to_trials(rt, "PG1")
    rt.finish_training_if_empty("PG1")
    statuses = []

    def tab():
        r2 = StudyRuntime(cfg, open_store(pg_url))
        while (t := r2.current_pair("PG1")) is not None:
            statuses.append(r2.vote("PG1", t.seq, "left").status)
        r2.store.dispose()

    ths = [threading.Thread(target=tab) for _ in range(3)]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    votes = store.participant_votes(cfg.study_id, "PG1")
    assert len(votes) == 6 == statuses.count("new")
    assert rt.stage("PG1") == "done"
    from lossarena.study_app.core.store import votes as votes_t
    from sqlalchemy.exc import IntegrityError

    v = dict(votes[0])
    v["seq"] = 500
    with pytest.raises(IntegrityError), store.write() as c:
        c.execute(votes_t.insert().values(**v))
    res = simulate(cfg.dir, pg_url, participants=4, concurrency=4, seed=2, progress=False)
    assert res.errors == [] and res.votes_new == 24
    out = export_votes(cfg.dir, pg_url, tmp_path / "v.csv", include_flagged=True)
    assert sum(1 for _ in open(out)) - 1 == 5 + 4 * 5
    store.dispose()


def test_two_replicas_share_one_database(make_study, pg_url, tmp_path):  # noqa: F811
    cfg = make_study(sessions=1, trials_per_participant=4, traps_per_participant=1, n_practice=0)
    open_store(pg_url).dispose()  # schema first, as `serve` does
    logs = [tmp_path / "ack1.csv", tmp_path / "ack2.csv"]
    # the same seed: both replicas serve the same 8 participants at the same time
    procs = [subprocess.Popen([sys.executable, "-m", "lossarena", "study", "simulate", str(cfg.dir),
                               "--db", pg_url, "--participants", "8", "--concurrency", "8", "--seed", "7",
                               "--ack-log", str(log), "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for log in logs]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_o, e) in zip(procs, outs):
        assert p.returncode == 0, e[-2000:]
    acks = [line.split(",") for log in logs for line in log.read_text().splitlines()]
    store = open_store(pg_url)
    votes = store.all_votes(cfg.study_id, kind=None)
    by_key = {(v["participant"], v["seq"]): v for v in votes}
    # every acknowledged vote is in the database with the acknowledged answer
    for pid, seq, _status, winner in acks:
        assert by_key[(pid, int(seq))]["winner"] == winner
    new = Counter(status for *_, status, _w in acks)["new"]
    assert new == len(votes) == 8 * 5  # nothing lost, nothing counted twice
    pairs = Counter((v["participant"], v["kind"], v["content"], v["grp"], v["pair_key"]) for v in votes)
    assert max(pairs.values()) == 1
    assert all(p["stage"] == "done" for p in store.list_participants(cfg.study_id))
    store.dispose()
