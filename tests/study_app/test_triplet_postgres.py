"""The triplet design on the PostgreSQL store (a real server, tests/pg_server.py): triplets issued and
answered through two runtimes at once, no duplicate, and the triplet export as `analysis jnd` reads it;
the store schema is the pairwise one (no migration)."""

from __future__ import annotations

import csv
import threading

import pytest
import study_fixtures
from lossarena.study_app.core.config import TripletSettings
from lossarena.study_app.core.export import TRIPLET_COLUMNS, export_votes
from lossarena.study_app.core.session import StudyRuntime
from lossarena.study_app.core.simulate_triplets import simulate_triplets
from lossarena.study_app.core.store import PostgresStore, open_store
from pg_server import pg_server, pg_url  # noqa: F401  (fixtures)

stimuli_dir = study_fixtures.stimuli_dir
make_study = study_fixtures.make_study
pytestmark = pytest.mark.postgres


def test_postgres_triplets(make_study, pg_url, tmp_path):  # noqa: F811
    cfg = make_study(design="triplet", trials_per_participant=12, n_practice=1, study_id="pgtriplet",
                     triplet=TripletSettings(trap_rate=0.1, bias_rate=0.1))
    store = open_store(pg_url)
    assert isinstance(store, PostgresStore)
    rt = StudyRuntime(cfg, store)
    study_fixtures.to_trials(rt, "PGT")
    statuses = []

    def tab():
        r2 = StudyRuntime(cfg, open_store(pg_url))
        while (t := r2.current_pair("PGT")) is not None:
            statuses.append(r2.vote("PGT", t.seq, "right").status)
        r2.store.dispose()

    ths = [threading.Thread(target=tab) for _ in range(2)]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    votes = store.participant_votes(cfg.study_id, "PGT")
    assert len(votes) == 12 == statuses.count("new") and rt.stage("PGT") == "done"
    assert {v["kind"] for v in votes} == {"trial", "trap", "bias"}
    res = simulate_triplets(cfg.dir, pg_url, participants=3, seed=5)
    assert res.errors == [] and res.answers == 36
    out = tmp_path / "t.csv"
    export_votes(cfg.dir, pg_url, out, include_flagged=True)
    rows = list(csv.DictReader(open(out)))
    assert tuple(rows[0]) == TRIPLET_COLUMNS and len(rows) == 48
    store.dispose()
