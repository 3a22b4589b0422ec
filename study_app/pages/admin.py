"""The researcher's page (``/admin``), behind the admin secret: progress, participants, outlier
flags, export. Participants never reach it without the secret."""

import streamlit as st
from lossarena.study_app import state as K
from lossarena.study_app import ui
from lossarena.study_app.core import admin
from lossarena.study_app.core.export import export_text
from lossarena.study_app.core.security import check_secret

rt = ui.runtime()
st.title("Study admin")
if not st.session_state.get(K.ADMIN_OK):
    secret = st.text_input("Admin secret", type="password", key=K.ADMIN_SECRET)
    if st.button("Log in", key=K.ADMIN_LOGIN):
        if check_secret(secret, rt.cfg.admin_key):
            st.session_state[K.ADMIN_OK] = True
            st.rerun()
        else:
            st.error("Wrong secret.")
    st.stop()

st.caption(f"Study {rt.study_id} · sampler {rt.cfg.sampler} · store {rt.store.url.split(':', 1)[0]}")
parts = admin.participants_table(rt)
c1, c2, c3, c4 = st.columns(4)
c1.metric("Participants", len(parts))
c2.metric("Completed", int((parts["stage"] == "done").sum()) if len(parts) else 0)
c3.metric("Votes", rt.store.count_votes(rt.study_id))
c4.metric("Flagged (QC)", int(parts["flagged"].sum()) if len(parts) else 0)
st.subheader("Progress per content and condition")
st.dataframe(admin.progress_table(rt), hide_index=True, width="stretch")
st.subheader("Participants")
st.caption("flagged = broke a quality-control rule (reasons in 'flags'); flagged participants are left out of "
           "the default export. is_outlier additionally marks statistical outliers (for information).")
st.dataframe(parts, hide_index=True, width="stretch")
st.subheader("Export")
st.download_button("Download votes.csv (flagged participants left out)",
                   export_text(rt.store, rt.cfg, include_flagged=False),
                   file_name=f"{rt.study_id}-votes.csv", mime="text/csv")
st.download_button("Download votes-all.csv (flagged participants included)",
                   export_text(rt.store, rt.cfg, include_flagged=True),
                   file_name=f"{rt.study_id}-votes-all.csv", mime="text/csv")
st.subheader("Resolve an error id")
eid = st.text_input("Error id shown to a participant", key=K.ADMIN_ERROR_ID).strip().lower()
if eid:
    hits = [e for e in rt.store.list_events(rt.study_id, kind="error") if (e.get("data") or {}).get("error_id") == eid]
    if not hits:
        st.info("No error with this id in this study's event log.")
    for e in hits:
        st.write(f"participant {e['participant'] or '-'}, {e['data'].get('type')}")
        st.code(e["data"].get("traceback", ""), language=None)
if st.button("Log out"):
    st.session_state[K.ADMIN_OK] = False
    st.rerun()
