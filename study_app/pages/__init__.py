"""Thin Streamlit pages over :mod:`lossarena.study_app.core` (routed by ``app.py``)."""
