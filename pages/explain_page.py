"""Explain: why each model reads a digit the way it does (attributions, and how each architecture reads), and how far
its answer holds (what-if changes to the digit, adversarial attacks)."""

import time

import numpy as np
import streamlit as st

from dashboard import explain as cached
from dashboard import handoff
from dashboard.cache import dataset_split
from dashboard.figures import flip_epsilon_figure, step_probabilities_figure
from dashboard.pictures import diverging, heat_overlay, magnified, map_grid, steps_read
from dashboard.sidebar import calibrated, chosen_dataset, selected_entries
from dashboard.text import decision_step, flip_order
from dashboard.timing import record
from dashboard.widgets import enlarge, model_problems
from mnist_models.data import get_dataset
from mnist_models.explain import (
    ATTRIBUTION_METHODS,
    has_convolution,
    reading,
    reads_flat_pixels,
)
from mnist_models.robustness import EPSILON_METHODS, FLIP_SEARCH_LIMIT, perturb
from mnist_models.serving.catalog import predict_with_each

VIEWS = ["Where each model looks", "How each one reads it", "What if…", "Adversarial attack"]

spec = get_dataset(chosen_dataset())
st.title("Explain: why each model answers, and when it breaks")
model_problems()


def choose_digit() -> tuple[np.ndarray, str] | None:
    """The digit to explain and where it came from, or None after a hint when there is none."""
    drawing = st.session_state.get(handoff.LAST_DRAWING_KEY)
    sources = [handoff.DRAWING, handoff.TEST_IMAGE] if spec.name == "mnist" else [handoff.TEST_IMAGE]  # a drawn
    # digit is not a shirt: another dataset's models explain its own test images
    preferred = st.session_state.get(handoff.SOURCE_KEY, handoff.DRAWING if drawing is not None else handoff.TEST_IMAGE)
    preferred = preferred if preferred in sources else handoff.TEST_IMAGE
    source = st.radio("Digit to explain", sources, index=sources.index(preferred), horizontal=True)
    st.session_state[handoff.SOURCE_KEY] = source
    if source == handoff.DRAWING:
        if drawing is None:
            st.info("Nothing drawn yet in this visit: draw a digit on the Draw page, or pick a test image above.",
                    icon=":material/gesture:")
            st.page_link("pages/draw_page.py", label="Draw a digit", icon=":material/draw:")
            return None
        return drawing, "your drawing"
    test = dataset_split("test", spec.name)
    if test is None:
        return None
    images, labels = test
    left, right = st.columns([3, 1], vertical_alignment="bottom")
    if right.button("Random test image", icon=":material/shuffle:"):
        st.session_state[handoff.TEST_INDEX_KEY] = int(np.random.default_rng().integers(len(labels)))
    index = left.number_input(f"Test image (0–{len(labels) - 1:,})", 0, len(labels) - 1,
                              int(st.session_state.get(handoff.TEST_INDEX_KEY, 0)))
    st.session_state[handoff.TEST_INDEX_KEY] = int(index)
    return images[index].numpy(), f"test image #{index}, labelled {spec.classes[int(labels[index])]}"


chosen = choose_digit()
entries = selected_entries()
if chosen is None:
    st.stop()
if not entries:
    st.warning("No model is selected or available; choose some in the sidebar.")
    st.stop()
digit, origin = chosen
image_key, version = digit.astype(np.uint8).tobytes(), cached.version()
predictions = predict_with_each(entries, digit, calibrated())
answers = {prediction.name: prediction for prediction in predictions}

picture, summary = st.columns([1, 5])
picture.image(enlarge(digit, 112), caption=origin)
summary.markdown("  \n".join(f"**{p.title}** reads **{spec.classes[p.digit]}** ({p.confidence:.1%} sure)"
                            for p in predictions))
view = st.radio("Show", VIEWS, horizontal=True, label_visibility="collapsed")


def where_each_model_looks() -> None:
    """Attribution maps side by side, a row per method and a column per model, for each model's own answer or for a
    digit the visitor asks about."""
    targets = ["its own answer", *map(str, range(10))]
    asked = st.selectbox("Explain the evidence for", targets,
                         help="Pick a digit to ask each model “why not a 7?”: red pixels push towards that digit, "
                              "blue pixels away from it.")
    st.caption("Red: what raises the score of the digit asked about; blue: what lowers it (Saliency shows only how "
               "sensitive the score is to each pixel, so it has no blue). Grad-CAM locates the last convolution's "
               "features, at their coarser resolution. Each map is scaled on its own.")
    started = time.perf_counter()
    maps, captions = {}, {}
    for entry in entries:
        answer = answers[entry.name]
        target = answer.digit if asked == targets[0] else int(asked)
        maps[entry.title] = cached.attributions(entry.name, version, image_key, target)
        captions[entry.title] = (f"{entry.title}: {answer.digit} ({answer.confidence:.0%})" if asked == targets[0]
                                 else f"{entry.title}: {target} at {answer.probabilities[target]:.1%}")
    for method in ATTRIBUTION_METHODS:
        shown = {title: found[method] for title, found in maps.items() if not isinstance(found[method], str)}
        absent = {title: found[method] for title, found in maps.items() if isinstance(found[method], str)}
        st.markdown(f"**{cached.METHOD_TITLES[method]}**")
        if shown:
            st.image([enlarge(heat_overlay(digit, heat), 120) for heat in shown.values()],
                     caption=[captions[title] for title in shown], width=120)
        if absent:
            st.caption(f"Absent for {', '.join(absent)}: {next(iter(absent.values()))}.")
    record("explain_attributions", (time.perf_counter() - started) * 1000)


def how_each_reads() -> None:
    """Each architecture's own way in: the recurrent readers step by step, the CNNs' feature maps, the MLP's units."""
    for entry in entries:
        network, answer = entry.network, answers[entry.name]
        st.markdown(f"#### {entry.title}")
        order = reading(network)
        if order is not None:
            probabilities = cached.step_probabilities(entry.name, version, image_key)
            st.caption(decision_step(probabilities, entry.title, order))
            left, right = st.columns([1, 3])
            steps = left.slider(f"{order.unit.capitalize()}s read so far", 1, order.steps, order.steps,
                                key=f"steps_{entry.name}")
            left.image(enlarge(steps_read(digit, order, steps), 140), caption=f"after {order.unit} {steps}: "
                       f"{int(probabilities[steps - 1].argmax())} ({probabilities[steps - 1].max():.0%})")
            right.plotly_chart(step_probabilities_figure(probabilities, order, steps), key=f"step_chart_{entry.name}")
        elif reads_flat_pixels(network):
            units = cached.strongest_units(entry.name, version, image_key, 8)
            st.caption(f"{entry.title} sees 784 separate pixels. Its first-layer units that fire most for this "
                       f"digit, each shown as its 28×28 weights (red: ink there excites the unit, blue: inhibits):")
            st.image([enlarge(diverging(unit.weights), 84) for unit in units],
                     caption=[f"unit {unit.index}: {unit.activation:.1f}" for unit in units], width=84)
        elif has_convolution(network):
            maps = cached.feature_maps(entry.name, version, image_key)
            layers = list(maps)
            if len(layers) > 3:  # MobileNet: dozens of layers, one at a time
                layers = [st.select_slider(f"{entry.title}: convolution layer", layers, value=layers[0],
                                           key=f"layer_{entry.name}")]
            st.caption(f"What each convolution filter responds to in this digit (bright: strong response), first "
                       f"layer first: edges and strokes, then their combinations. {entry.title} answers "
                       f"{answer.digit}.")
            for layer in layers:
                channels, height, width = maps[layer].shape
                shown = maps[layer][:64]
                st.image(magnified(map_grid(shown, columns=16), 900),
                         caption=f"convolution {list(maps).index(layer) + 1} of {len(maps)} ({layer}): {channels} "
                                 f"maps of {height}×{width}"
                                 f"{f', the first {len(shown)} shown' if channels > len(shown) else ''}")


@st.fragment
def what_if() -> None:
    """Sliders that change the digit; only this fragment reruns, so the answers follow the slider."""
    st.caption("Change the digit and watch where each model starts to fail.")
    columns = st.columns(4)
    rotate = columns[0].slider("Rotate (°)", -90, 90, 0, step=5)
    shift_x = columns[1].slider("Shift right (px)", -8, 8, 0)
    shift_y = columns[1].slider("Shift down (px)", -8, 8, 0)
    scale = columns[0].slider("Scale", 0.4, 1.6, 1.0, step=0.05)
    thickness = columns[2].slider("Stroke (thinner ← → thicker)", -2, 2, 0)
    noise = columns[2].slider("Noise σ", 0.0, 1.0, 0.0, step=0.05)
    patch = columns[3].slider("Occluding patch size (px)", 0, 14, 0)
    row = columns[3].slider("Patch row", 0, 27, 14, disabled=patch == 0)
    column = columns[3].slider("Patch column", 0, 27, 14, disabled=patch == 0)
    started = time.perf_counter()
    changed = perturb(digit, rotate=float(rotate), shift=(shift_x, shift_y), scale=float(scale), thickness=thickness,
                      noise=float(noise), occlude=(row, column, patch) if patch else None)
    now = predict_with_each(entries, changed, calibrated())
    left, right = st.columns([1, 3])
    left.image(enlarge(changed, 168), caption="the changed digit")
    right.dataframe([{"model": p.title, "answer": p.digit, "confidence": p.confidence,
                      "was": answers[p.name].digit, "still right?": "yes" if p.digit == answers[p.name].digit
                      else "changed"} for p in now],
                    hide_index=True, column_config={"confidence": st.column_config.ProgressColumn(
                        format="percent", min_value=0.0, max_value=1.0)})
    record("explain_what_if", (time.perf_counter() - started) * 1000)


@st.fragment
def adversarial_attack() -> None:
    """Each model attacked with its own gradients at the chosen ε; and the smallest ε that flips each one."""
    columns = st.columns(3)
    method = columns[0].radio("Attack", EPSILON_METHODS, format_func=str.upper, horizontal=True,
                              help="FGSM: one step along the sign of the gradient. PGD: ten smaller steps, "
                                   "each projected back within ε: stronger, and slower.")
    epsilon = columns[1].slider("ε (largest change per pixel, 0–1)", 0.0, 0.5, 0.1, step=0.01)
    goal = columns[2].selectbox("Push towards", ["any other digit", *map(str, range(10))])
    target = None if goal == "any other digit" else int(goal)
    started = time.perf_counter()
    pictures, captions, flipped = [], [], []
    for entry in entries:
        changed = cached.attacked(entry.name, version, image_key, float(epsilon), method, target)
        answer = predict_with_each([entry], changed, calibrated())[0]
        was = answers[entry.name].digit
        pictures += [enlarge(changed, 112), enlarge(diverging(changed.astype(np.float32) - digit), 112)]
        verdict = "still " if answer.digit == was else f"flipped from {was} to "
        captions += [f"{entry.title}: {verdict}{answer.digit} ({answer.confidence:.0%})", "its perturbation"]
        flipped.append(answer.digit != was)
    record("explain_adversarial", (time.perf_counter() - started) * 1000)
    st.markdown(f"At ε = {epsilon:.2f}, **{sum(flipped)} of {len(entries)}** models change their answer.")
    st.image(pictures, caption=captions, width=112)
    if st.toggle("Which model flips first? (searches ε for each model)", key="flip_search"):
        epsilons = {entry.title: cached.flipping_epsilon(entry.name, version, image_key, method, target)
                    for entry in entries}
        st.caption(flip_order(epsilons))
        st.plotly_chart(flip_epsilon_figure(epsilons, FLIP_SEARCH_LIMIT), key="flip_chart")


{VIEWS[0]: where_each_model_looks, VIEWS[1]: how_each_reads, VIEWS[2]: what_if, VIEWS[3]: adversarial_attack}[view]()
