"""Compare: ROC curves, confusion matrices with a gallery per cell, training curves, per-class scores, mistakes."""

import numpy as np
import streamlit as st

from dashboard.cache import dataset_split
from dashboard.figures import (
    confusion_figure,
    per_class_frame,
    roc_by_class_figure,
    roc_by_model_figure,
    training_curves_figure,
)
from dashboard.sidebar import chosen_dataset, selected_entries
from dashboard.widgets import model_problems, prediction_gallery
from mnist_models.data import VALIDATION_SIZE, get_dataset
from mnist_models.exploration import confusion_cell, most_confident_mistakes

spec = get_dataset(chosen_dataset())
classes = list(spec.classes)
st.title("Compare the models")
st.caption(f"Models trained on {spec.title}, measured on its test images (choose the dataset in the sidebar).")
model_problems(needs_evaluation=True)
chosen = selected_entries()
entries = [entry for entry in chosen if entry.evaluation is not None]
unevaluated = [entry.title for entry in chosen if entry.evaluation is None and not entry.evaluation_error]
if unevaluated:
    st.info(f"Not evaluated yet, so not shown here: {', '.join(unevaluated)} (`digit-lab evaluate`).",
            icon=":material/info:")
if not entries:
    st.info("No evaluated model is selected; choose models in the sidebar.")
    st.stop()
evaluations = {entry.title: entry.evaluation for entry in entries}

st.subheader("ROC curves (one class against the rest)")
left, right = st.columns(2)
with left:
    title = st.selectbox("Model", list(evaluations), key="roc_model")
    st.plotly_chart(roc_by_model_figure(evaluations[title], title), key="roc_model_chart")
with right:
    digit = st.selectbox("Digit" if spec.name == "mnist" else "Class", list(range(10)), key="roc_digit",
                         format_func=classes.__getitem__)
    st.plotly_chart(roc_by_class_figure(evaluations, digit), key="roc_digit_chart")

st.subheader("Training curves")
histories = {entry.title: entry.meta.history for entry in entries if entry.meta.has_curves}
if histories:
    st.plotly_chart(training_curves_figure(histories), key="training_curves")
    st.caption(f"Solid: training set; dashed: the {VALIDATION_SIZE:,} held-out validation images, measured after "
               f"each epoch.")
missing = [entry.title for entry in entries if entry.title not in histories]
if missing:
    st.caption(f"No training history recorded for {', '.join(missing)}.")

st.subheader("Per-class precision, recall and F1")
st.dataframe(per_class_frame(evaluations, classes).style.format("{:.2%}"))

test = dataset_split("test", spec.name)
st.subheader("Confusion matrices")
if spec.name != "mnist":
    st.caption("Labels: " + ", ".join(f"{label} = {name}" for label, name in enumerate(classes)))
st.caption("Click a cell to see those test images with every model's prediction." if test else
           "The galleries need the test images.")
selection = None
columns = st.columns(min(3, len(entries)))
for position, entry in enumerate(entries):
    with columns[position % len(columns)]:
        event = st.plotly_chart(confusion_figure(entry.evaluation.metrics.confusion_matrix, entry.title),
                                key=f"confusion_{entry.name}", on_select="rerun", selection_mode="points")
        points = event["selection"]["points"] if event else []
        if points:
            selection = (entry, int(points[0]["y"]), int(points[0]["x"]))
if test is None:
    st.stop()
images, labels = test
labels = labels.numpy()
# Per-image predictions exist only in evaluations of this test set (an older or partial file may lack them).
with_predictions = [entry for entry in entries if entry.evaluation.predictions is not None
                    and len(entry.evaluation.predictions) == len(labels)]

if selection is not None and selection[0] in with_predictions:
    entry, true_digit, predicted_digit = selection
    cell = confusion_cell(labels, np.asarray(entry.evaluation.predictions), true_digit, predicted_digit)
    prediction_gallery(images, labels, cell[:40], with_predictions, f"**{entry.title}: true {true_digit}, predicted "
                       f"{predicted_digit}** — {len(cell)} images{' (first 40)' if len(cell) > 40 else ''}", "cell")

st.subheader("Most confident mistakes")
usable = {entry.title: entry for entry in with_predictions if entry.evaluation.confidence is not None}
if not usable:
    st.info("The selected models' evaluations hold no per-image predictions; re-run `digit-lab evaluate`.")
    st.stop()
entry = usable[st.selectbox("Model", list(usable), key="mistakes_model")]
mistakes = most_confident_mistakes(labels, np.asarray(entry.evaluation.predictions),
                                   np.asarray(entry.evaluation.confidence))
prediction_gallery(images, labels, mistakes, with_predictions, f"{entry.title} gets {entry.evaluation.metrics.errors} "
                   f"of {entry.evaluation.metrics.count:,} test images wrong; the {len(mistakes)} it was surest about:",
                   "mistakes")
