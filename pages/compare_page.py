"""Compare: ROC curves, confusion matrices with a gallery per cell, training curves, per-class scores, mistakes."""

import numpy as np
import streamlit as st

from mnist_models.dashboard import mnist, selected_entries
from mnist_models.exploration import confusion_cell, enlarge, most_confident_mistakes
from mnist_models.figures import (confusion_figure, per_class_frame, roc_by_class_figure, roc_by_model_figure,
                                  training_curves_figure)

st.title("Compare the models")
entries = [entry for entry in selected_entries() if entry.results is not None]
if not entries:
    st.info("No evaluated model is selected; choose models in the sidebar.")
    st.stop()
results = {entry.title: entry.results for entry in entries}
by_title = {entry.title: entry for entry in entries}

st.subheader("ROC curves (one digit against the rest)")
left, right = st.columns(2)
with left:
    title = st.selectbox("Model", list(results), key="roc_model")
    st.plotly_chart(roc_by_model_figure(results[title], title), key="roc_model_chart")
with right:
    digit = st.selectbox("Digit", list(range(10)), key="roc_digit")
    st.plotly_chart(roc_by_class_figure(results, digit), key="roc_digit_chart")

st.subheader("Training curves")
st.plotly_chart(training_curves_figure({entry.title: entry.meta["history"] for entry in entries}),
                key="training_curves")
st.caption("Solid: training set; dashed: the 5,000 held-out validation images, measured after each epoch.")

st.subheader("Per-class precision, recall and F1")
st.dataframe(per_class_frame(results).style.format("{:.2%}"))

test = mnist("test")
st.subheader("Confusion matrices")
st.caption("Click a cell to see those test images with every model's prediction." if test else
           "The galleries need the test images.")
selection = None
for column, entry in zip(st.columns(min(3, len(entries))) * 2, entries):
    with column:
        event = st.plotly_chart(confusion_figure(entry.results["metrics"]["confusion_matrix"], entry.title),
                                key=f"confusion_{entry.name}", on_select="rerun", selection_mode="points")
        points = event["selection"]["points"] if event else []
        if points:
            selection = (entry, int(points[0]["y"]), int(points[0]["x"]))
if test is None:
    st.stop()
images, labels = test
labels = labels.numpy()


def gallery(indices, heading: str) -> None:
    st.markdown(heading)
    if len(indices) == 0:
        st.write("No such images.")
        return
    captions = [" · ".join(f"{e.name} {e.results['predictions'][i]}" for e in entries) for i in indices]
    st.image([enlarge(images[i].numpy(), 84) for i in indices], caption=[
        f"#{i} true {labels[i]}: {caption}" for i, caption in zip(indices, captions)])


if selection is not None:
    entry, true_digit, predicted_digit = selection
    cell = confusion_cell(labels, np.asarray(entry.results["predictions"]), true_digit, predicted_digit)
    gallery(cell[:40], f"**{entry.title}: true {true_digit}, predicted {predicted_digit}** — {len(cell)} images"
                       f"{' (first 40)' if len(cell) > 40 else ''}")

st.subheader("Most confident mistakes")
chosen = st.selectbox("Model", list(by_title), key="mistakes_model")
entry = by_title[chosen]
mistakes = most_confident_mistakes(labels, np.asarray(entry.results["predictions"]),
                                   np.asarray(entry.results["confidence"]))
gallery(mistakes, f"{entry.title} gets {entry.results['metrics']['errors']} of 10,000 test images wrong; "
                  f"the {len(mistakes)} it was surest about:")
