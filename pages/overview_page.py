"""Overview: what digit-lab is, the leaderboard from saved results, and the recommended model."""

import streamlit as st

from dashboard.cache import data_root
from dashboard.figures import leaderboard_figure
from dashboard.report_html import report_html
from dashboard.sidebar import chosen_dataset, selected_entries
from dashboard.widgets import leaderboard, leaderboard_table, model_problems
from mnist_models.data import get_dataset
from mnist_models.models.registry import MODEL_NAMES
from mnist_models.reporting import recommend
from mnist_models.stakeholder_report import DEFAULT_REPORT_TITLE

st.title("digit-lab")
rows = leaderboard(selected_entries())
tested = f"its {rows[0].count:,} test images" if rows else "its test images"
st.markdown(
    f"{len(MODEL_NAMES)} handwritten-digit classifiers, trained on MNIST and measured on {tested}: the architectures "
    "of two analysis reports (MLP, RNN, CNN, basic CNN, CNN + dropout, MobileNet), the next steps they suggested (a "
    "ResNet and a CNN + GRU hybrid), and a CNN built to reach 99% in seconds. "
    "Draw a digit and watch every model answer, explore the dataset, or compare the models in depth.")

model_problems(needs_evaluation=True)

if not rows:
    st.info("No evaluated model is selected. Pick models in the sidebar, or train and evaluate them with "
            "`digit-lab train --all`.")
else:
    choice = recommend(rows)
    chosen = next(row for row in rows if row.name == choice.name)
    st.subheader(f"Recommended: {chosen.title}", anchor="recommended")
    st.markdown("\n".join(f"- {reason}" for reason in choice.reasons))
    st.caption(f"Rule: {choice.rule}")

    st.subheader("Leaderboard", anchor="leaderboard")
    st.caption(f"Models trained on {get_dataset(chosen_dataset()).title} and measured on its test images; the "
               f"sidebar switches the dataset (models of different datasets are never ranked together).")
    leaderboard_table(rows)
    st.plotly_chart(leaderboard_figure(rows), key="leaderboard_chart")

    st.subheader("Report", anchor="report")
    if chosen_dataset() != "mnist":
        st.caption("The stakeholder report covers the MNIST models (its dataset and figures are MNIST's): choose MNIST "
                   "in the sidebar to write it.")
    else:
        entries = selected_entries()
        st.caption(f"A stakeholder report on the {len(entries)} models selected in the sidebar, written from their "
                   "saved measurements: dataset, architectures, training set-ups, results beside the reports' figures, "
                   "robustness, calibration, the recommendation and findings. One HTML file that opens offline; print "
                   "it to PDF from the browser.")
        title = st.text_input("Title", DEFAULT_REPORT_TITLE, key="report_title")
        root = data_root()
        # Written when clicked (on Streamlit's download thread), not on every rerun of the page.
        st.download_button("Download report", lambda: report_html(entries, title, root),
                           file_name="digit-lab-report.html", mime="text/html", on_click="ignore",
                           icon=":material/description:", type="primary")

st.subheader("Pages")
columns = st.columns(4)
columns[0].page_link("pages/draw_page.py", label="Draw a digit", icon=":material/draw:")
columns[0].caption("Every model's answer to your handwriting, live.")
columns[1].page_link("pages/dataset_page.py", label="Explore the dataset", icon=":material/dataset:")
columns[1].caption("Samples, class balance, mean digits, what each architecture sees.")
columns[2].page_link("pages/compare_page.py", label="Compare the models", icon=":material/compare_arrows:")
columns[2].caption("ROC curves, confusion matrices, training curves, mistakes.")
columns[3].page_link("pages/train_page.py", label="Train a model", icon=":material/model_training:")
columns[3].caption("Pick hyperparameters, watch the curves grow, compare with the shipped model.")
