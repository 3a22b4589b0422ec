"""Environment variables the served app reads (kept apart from :mod:`.ui`, which imports Streamlit)."""

ENV_STUDY_DIR = "LOSSARENA_STUDY_DIR"
ENV_DB_URL = "LOSSARENA_STUDY_DB"
