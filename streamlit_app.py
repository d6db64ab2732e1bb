"""Entry point of the facial-expression dashboard: one ``st.navigation`` router over the pages.

The router owns the sidebar's titles and icons ("Home" first) and the wide layout; the pages in
``app_pages/`` only draw their content (a folder named ``pages/`` would let a deep link bypass the router:
see :mod:`fer_core.app.ui`). Every page runs through :func:`fer_core.app.ui.run_page_guarded`, so
an exception in a page is logged on the server with its traceback and shown to the user as a
message instead of a bare stack trace. Kept free of TensorFlow so the Home page opens at once.
"""

from __future__ import annotations

import streamlit as st

from fer_core.app.ui import HOME_PAGE, existing_pages, log_to_stderr, run_page_guarded

log_to_stderr()
# 340 px: wide enough for the model picker's longest label ("Accurate — ensemble of 6, 71.9 %").
st.set_page_config(layout="wide", initial_sidebar_state=340)
home = st.Page(HOME_PAGE.path, title=HOME_PAGE.title, icon=HOME_PAGE.icon, default=True)
pages = [st.Page(page.path, title=page.title, icon=page.icon, url_path=page.url_path) for page in existing_pages()]
run_page_guarded(st.navigation([home, *pages]))
