"""A polite stop: declined consent, a display that does not meet the requirements (with a way back on
another device while attempts are left) or a failed training."""

import streamlit as st
from lossarena.study_app import components, ui
from lossarena.study_app import state as K

rt, pid = ui.require_participant()
msg = ui.message(K.C_REFUSED)
if msg and msg["action"] == "retry_display" and rt.retry_display(pid):
    st.rerun()
p = rt.participant(pid)
st.title("Thank you for your interest")
reason = p.get("refusal") or ""
left = rt.display_retries_left(pid)
if reason.startswith("declined"):
    text = "You chose not to take part. You can close this page now."
elif reason.startswith("training"):
    text = ("Thank you for trying the practice. Unfortunately the answers did not reach the level this study "
            "needs, so we cannot include you this time. You can close this page now.")
else:
    text = ("Unfortunately this study cannot be done on the device or screen you are using. "
            + reason.removeprefix("display: ").capitalize() + ".")
    if left > 0:
        text += (f" You can open the same link on a desktop or laptop computer with a larger screen and check again "
                 f"({left} more attempt{'s' if left != 1 else ''}).")
    else:
        text += " Thank you for your time; you can close this page now."
components.study("refused", key=K.C_REFUSED, message=text, retry=left > 0)
