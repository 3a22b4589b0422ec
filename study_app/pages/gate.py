"""No (valid) participant id in the link: explain, never echo the input."""

import streamlit as st
from lossarena.study_app import ui

rt = ui.runtime()
_, why = ui.participant_id(rt)
st.title(rt.cfg.title)
if why == "preview":
    st.info("This is a preview. Please accept the task to start the study.")
elif why == "invalid":
    st.error("The participant id in this link is not valid. Please open the study through the link on your "
             "recruiting platform.")
else:
    st.warning("Please open the study through the link on your recruiting platform; the link carries your "
               "participant id.")
