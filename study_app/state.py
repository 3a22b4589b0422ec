"""Every Streamlit session-state key the study app uses, in one place.

Session state is only a convenience cache (the participant id of this browser tab, the feedback of
the practice pair just answered, the admin login): all study progress is persisted in the vote
store, so a reload or reconnect that loses session state resumes from the store.
"""

from __future__ import annotations

PREFIX = "la_"

WORKER = PREFIX + "worker"  # validated participant id of this tab
PLATFORM = PREFIX + "platform"
HANDLED = PREFIX + "handled"  # component messages already acted on: {(component key, n)}
PRACTICE_FEEDBACK = PREFIX + "practice_feedback"  # feedback of the practice pair just answered (dict)
DISPLAY_MESSAGE = PREFIX + "display_message"  # why the display check asks again
TRIALS_SEEN = PREFIX + "trials_seen"  # this tab has shown the trials page (a later first view = a reload)
ADMIN_SECRET = PREFIX + "admin_secret"
ADMIN_OK = PREFIX + "admin_ok"
ADMIN_LOGIN = PREFIX + "admin_login"
ADMIN_ERROR_ID = PREFIX + "admin_error_id"

# one key per page for the study component (a new page = a new component instance)
C_CONSENT = PREFIX + "c_consent"
C_DISPLAY = PREFIX + "c_display"
C_PRACTICE = PREFIX + "c_practice"
C_TRIALS = PREFIX + "c_trials"
C_DONE = PREFIX + "c_done"
C_REFUSED = PREFIX + "c_refused"
