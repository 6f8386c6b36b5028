"""Dataset: samples, class balance, mean images, intensities, how each architecture reads an image, a PCA map; of the
dataset chosen in the sidebar."""

import numpy as np
import streamlit as st

from dashboard.cache import PCA_POINTS, data_root, dataset_split, dataset_statistics, pca
from dashboard.figures import (
    DIGITS,
    class_distribution_figure,
    digit_map_figure,
    image_grid_figure,
    pixel_histogram_figure,
    sequence_figure,
)
from dashboard.sidebar import chosen_dataset
from dashboard.widgets import enlarge, picked_on_map
from mnist_models.data import VALIDATION_SIZE, get_dataset
from mnist_models.exploration import architecture_views, sample_indices

spec = get_dataset(chosen_dataset())
classes = list(spec.classes)
st.title(f"The {spec.title} dataset")
train, test = dataset_split("train", spec.name), dataset_split("test", spec.name)
if train is None or test is None:
    st.stop()
train_images, train_labels = train
root = data_root()
statistics = dataset_statistics(root, spec.name)
what = "handwritten digits, white ink on black" if spec.name == "mnist" else (
    f"ten kinds of clothing ({', '.join(classes)}), light on black")
st.markdown(f"{len(train_labels):,} training and {len(test[1]):,} test images of {what}, 28×28 pixels of 8-bit "
            f"gray. Models hold out {VALIDATION_SIZE:,} training images for validation; the test set is used only "
            f"for the final evaluation.")

st.subheader("Samples")
st.session_state.setdefault("sample_seed", 0)
controls = st.columns([1, 2, 1])
digit_choice = controls[0].selectbox("Digit" if classes == DIGITS else "Class", ["all", *DIGITS],
                                     format_func=lambda choice: choice if choice == "all" else classes[int(choice)],
                                     key="sample_digit")
count = controls[1].slider("Number of samples", 10, 100, 30, step=10, key="sample_count")
if controls[2].button("Reshuffle", icon=":material/shuffle:"):
    st.session_state.sample_seed += 1
digit = None if digit_choice == "all" else int(digit_choice)
indices = sample_indices(train_labels, count, digit, st.session_state.sample_seed)
st.image([enlarge(train_images[i].numpy(), 56) for i in indices],
         caption=[f"{classes[int(train_labels[i])]} · #{i}" for i in indices])

st.subheader("Class balance")
counts = statistics["train_counts"]
st.plotly_chart(class_distribution_figure(counts, statistics["test_counts"], classes), key="class_balance")
st.caption(f"The most common training class ({classes[int(counts.argmax())]}, {counts.max():,} images) is "
           f"{counts.max() / counts.min():.2f}× as frequent as the rarest ({classes[int(counts.argmin())]}, "
           f"{counts.min():,}). Accuracy is therefore a fair headline figure; per-class recall is on Compare.")

left, right = st.columns(2)
with left:
    st.subheader("Mean image of each class")
    st.plotly_chart(image_grid_figure(statistics["means"], classes, columns=5), key="mean_images")
with right:
    st.subheader("Pixel intensities")
    histogram = statistics["histogram"]
    st.plotly_chart(pixel_histogram_figure(histogram), key="pixel_histogram")
    st.caption(f"{histogram[0] / histogram.sum():.0%} of all pixels are pure black background.")

st.subheader("How each architecture sees one image")
index = st.number_input("Training image", 0, len(train_labels) - 1, int(indices[0]) if len(indices) else 0,
                        key="view_index")
views = architecture_views(train_images[index], spec.name)
columns = st.columns(4)
columns[0].image(enlarge(views["image"], 168), caption="CNNs: a 28×28×1 image")
columns[1].plotly_chart(sequence_figure(views["rows"], "RNN: 28 steps (rows) of 28 values"), key="rnn_view")
columns[2].image(enlarge(views["mobilenet"], 168), caption="MobileNet: resized to 96×96, gray copied to 3 channels")
with columns[3]:
    normalised = views["normalised"]
    st.markdown(f"**Normalisation**, applied first by every model: (x − {spec.mean}) / {spec.std}, the training "
                f"set's mean and standard deviation. Pixel values go from 0…1 to "
                f"{normalised.min():.3f}…{normalised.max():.3f}.")
st.plotly_chart(sequence_figure(views["vector"][np.newaxis, :], "MLP: one flat vector of 784 values"),
                key="mlp_view")

st.subheader("A 2-D map of the images (PCA)")
points = st.slider("Images on the map", 500, 5000, PCA_POINTS, step=500, key="pca_count")
coordinates, map_indices, variance = pca(root, points, 0, spec.name)
axes = (f"PC1 ({variance[0]:.1%} of variance)", f"PC2 ({variance[1]:.1%} of variance)")
event = st.plotly_chart(digit_map_figure(coordinates, train_labels.numpy()[map_indices], map_indices, axes,
                                         classes=classes),
                        key="pca_map", on_select="rerun", selection_mode=("points", "box", "lasso"))
st.caption("Each point is an image placed by its two main directions of pixel variation. Click a point, or drag a "
           "box or lasso around several, to see those images.")
picked_on_map(event, train_images, train_labels, classes=classes)
