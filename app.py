"""digit-lab: draw a digit, explore MNIST, compare six classifiers and train new runs. Start with `./run.sh`."""

import streamlit as st

from dashboard.sidebar import render_sidebar

st.set_page_config(page_icon=":material/draw:", layout="wide")

# url_path differs from each file name on purpose: a folder called pages/ would otherwise switch Streamlit to its
# legacy multipage mode, which runs a page without this entrypoint (and without the shared sidebar).
PAGES = [
    st.Page("pages/overview_page.py", title="Overview", icon=":material/leaderboard:", url_path="overview",
            default=True),
    st.Page("pages/draw_page.py", title="Draw", icon=":material/draw:", url_path="draw"),
    st.Page("pages/dataset_page.py", title="Dataset", icon=":material/dataset:", url_path="dataset"),
    st.Page("pages/compare_page.py", title="Compare", icon=":material/compare_arrows:", url_path="compare"),
    st.Page("pages/train_page.py", title="Train", icon=":material/model_training:", url_path="train"),
]

navigation = st.navigation(PAGES)
render_sidebar()
navigation.run()
