"""digit-lab: draw a digit, explore MNIST, compare the classifiers and train new runs. Start with `./run.sh`."""

from urllib.parse import urlparse

import streamlit as st

from dashboard.sidebar import render_sidebar

st.set_page_config(page_icon=":material/draw:", layout="wide")

OVERVIEW_SCRIPT = "pages/overview_page.py"
OVERVIEW_ALIAS = "overview"
# url_path differs from each file name on purpose: a folder called pages/ would otherwise switch Streamlit to its
# legacy multipage mode, which runs a page without this entrypoint (and without the shared sidebar).
PAGES = [
    st.Page(OVERVIEW_SCRIPT, title="Overview", icon=":material/leaderboard:", url_path="front", default=True),
    st.Page("pages/draw_page.py", title="Draw", icon=":material/draw:", url_path="draw"),
    st.Page("pages/explain_page.py", title="Explain", icon=":material/psychology:", url_path="explain"),
    st.Page("pages/dataset_page.py", title="Dataset", icon=":material/dataset:", url_path="dataset"),
    st.Page("pages/compare_page.py", title="Compare", icon=":material/compare_arrows:", url_path="compare"),
    st.Page("pages/evidence_page.py", title="Evidence", icon=":material/fact_check:", url_path="evidence"),
    st.Page("pages/train_page.py", title="Train", icon=":material/model_training:", url_path="train"),
    st.Page("pages/room_page.py", title="Room", icon=":material/photo_library:", url_path="room"),
]


def _requested_page() -> str:
    """The last part of the address the browser asked for ("" for the front page)."""
    return urlparse(st.context.url or "").path.rstrip("/").rpartition("/")[2]


# The Overview is the front page ("/"): Streamlit serves a default page only there, its url_path ("front") only names
# it inside. "/overview" links shared before (or typed by hand) reach it through an alias that is only added for
# them and sends them on to "/".
alias = st.Page(OVERVIEW_SCRIPT, title="Overview", url_path=OVERVIEW_ALIAS)
navigation = st.navigation(PAGES + [alias] if _requested_page() == OVERVIEW_ALIAS else PAGES)
if navigation is alias:
    st.switch_page(PAGES[0])
render_sidebar()
navigation.run()
