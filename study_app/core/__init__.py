"""The study app's core: everything a page or the simulator does, without Streamlit.

Pages (``lossarena.study_app.pages``) and the simulator call the same functions here, so the code
path a synthetic observer drives is the one a participant's browser drives.
"""
