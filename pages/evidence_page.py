"""Evidence: how each model degrades, how far its confidence can be trusted, where the models disagree and who is
right, and a map of the digits as a model sees them; read from the files `digit-lab evaluate` saves."""

import numpy as np
import streamlit as st

from dashboard.cache import dataset_split, feature_map
from dashboard.figures import (
    confidence_histogram_figure,
    digit_map_figure,
    disagreement_figure,
    reliability_figure,
    risk_coverage_figure,
    robustness_figure,
)
from dashboard.handoff import LAST_DRAWING_KEY
from dashboard.real_input import real_input_figure, shown_models, source_rows, summary_rows
from dashboard.sidebar import chosen_dataset, selected_entries
from dashboard.text import (
    calibration_ranking,
    dropout_verdict,
    rnn_verdict,
    robustness_ranking,
    selective_sentence,
)
from dashboard.widgets import enlarge, model_problems, picked_on_map, prediction_gallery
from mnist_models.data import get_dataset
from mnist_models.evidence import CORRUPTIONS, disagreement_counts, disagreement_outcome
from mnist_models.feature_space import place
from mnist_models.real_input import load_real_input_results, resolve_results_path
from mnist_models.store.evidence_records import overall_robustness
from mnist_models.store.records import RecordError

SECTIONS = ["Robustness", "Calibration", "Selective prediction", "Disagreements", "Map of the digits", "Real input"]
COMMAND = "digit-lab evaluate --only {part}"
REAL_INPUT_COMMAND = "MNIST_DATA_DIR=../shared/data python -m benchmarks.bench_real_input --threads 1"

st.title("Evidence: how the models hold up")
model_problems(needs_evaluation=True)
entries = [entry for entry in selected_entries() if entry.evaluation is not None]
for entry in selected_entries():
    if entry.evidence_error:
        st.warning(f"**{entry.title}**: its evidence cannot be shown: {entry.evidence_error}", icon=":material/error:")
if not entries:
    st.info("No evaluated model is selected; choose models in the sidebar.")
    st.stop()
section = st.radio("Evidence", SECTIONS, horizontal=True, label_visibility="collapsed")


def missing(part: str, attribute: str) -> None:
    """One line naming the selected models without this part of the evidence, and the command that computes it."""
    absent = [entry.title for entry in entries if entry.evidence is None or getattr(entry.evidence, attribute) is None]
    if absent:
        st.caption(f"Not computed for {', '.join(absent)}: `{COMMAND.format(part=part)}` (saved runs get it when "
                   f"they are trained).")


def robustness() -> None:
    st.markdown("Test accuracy on the 10,000 test digits as each corruption grows (FGSM: each model attacked with "
                "its own gradients).")
    with_curves = [entry for entry in entries if entry.evidence and entry.evidence.robustness]
    missing("robustness", "robustness")
    if not with_curves:
        return
    curves = {entry.title: entry.evidence.robustness for entry in with_curves}
    names = {entry.name: entry.evidence.robustness for entry in with_curves}
    titles = {entry.name: entry.title for entry in with_curves}
    st.markdown(robustness_ranking(curves))
    st.markdown(dropout_verdict(names, titles))
    st.markdown(rnn_verdict(names, titles, {entry.name: entry.evaluation.metrics.accuracy for entry in with_curves}))
    st.plotly_chart(robustness_figure(curves, {name: c.title for name, c in CORRUPTIONS.items()},
                                      {name: c.unit for name, c in CORRUPTIONS.items()}), key="robustness_chart")
    st.dataframe([{"model": title, "overall": overall_robustness(model_curves),
                   **{CORRUPTIONS[name].title if name in CORRUPTIONS else name: curve.score
                      for name, curve in model_curves.items()}} for title, model_curves in curves.items()],
                 hide_index=True, column_config={column: st.column_config.NumberColumn(format="%.3f") for column in
                                                 ["overall", *(c.title for c in CORRUPTIONS.values())]})


def calibration() -> None:
    st.markdown("Can a model's confidence be trusted? Top-label confidence against accuracy on the test digits, "
                "before and after **temperature scaling** (one number per model, fitted on the validation digits, "
                "that divides its logits; it never changes an answer).")
    with_calibration = {entry.title: entry.evidence.calibration for entry in entries
                        if entry.evidence and entry.evidence.calibration}
    missing("calibration", "calibration")
    if not with_calibration:
        return
    st.markdown(calibration_ranking(with_calibration))
    calibrated = st.toggle("After temperature scaling", key="calibrated_view")
    left, right = st.columns(2)
    left.plotly_chart(reliability_figure(with_calibration, calibrated), key="reliability_chart")
    right.plotly_chart(confidence_histogram_figure(with_calibration, calibrated), key="confidence_chart")
    st.dataframe([{"model": title, "temperature": c.temperature, "ECE before": c.ece_before, "ECE after": c.ece_after,
                   "test NLL before": c.test_nll_before, "test NLL after": c.test_nll_after}
                  for title, c in with_calibration.items()], hide_index=True, column_config={
        "temperature": st.column_config.NumberColumn(format="%.3f"),
        "ECE before": st.column_config.NumberColumn("calibration error (ECE), as trained", format="percent"),
        "ECE after": st.column_config.NumberColumn("ECE, temperature-scaled", format="percent"),
        "test NLL before": st.column_config.NumberColumn(format="%.4f"),
        "test NLL after": st.column_config.NumberColumn(format="%.4f")})


def selective() -> None:
    st.markdown("If a model may say “not sure” below a confidence threshold, how accurate is it on what it answers? "
                "The threshold that makes it right 99.9% of the time, and the share of digits it then answers:")
    with_curves = {entry.title: entry.evidence.selective for entry in entries
                   if entry.evidence and entry.evidence.selective}
    missing("calibration", "selective")
    if not with_curves:
        return
    for title, curve in with_curves.items():
        st.markdown(f"- {selective_sentence(title, curve)}")
    st.plotly_chart(risk_coverage_figure(with_curves), key="risk_coverage_chart")


def disagreements() -> None:
    test = dataset_split("test", chosen_dataset())
    if test is None:
        return
    images, labels = test
    labels = labels.numpy()
    usable = [entry for entry in entries if entry.evaluation.predictions is not None
              and len(entry.evaluation.predictions) == len(labels)]
    if len(usable) < 2:
        st.info("Disagreements need at least two selected models whose evaluation holds per-image answers.")
        return
    answers = {entry.title: np.asarray(entry.evaluation.predictions) for entry in usable}
    st.markdown("Test digits on which two models give different answers:")
    st.plotly_chart(disagreement_figure(disagreement_counts(answers), list(answers)), key="disagreement_chart")
    left, right = st.columns(2)
    first = left.selectbox("Model", list(answers), key="pair_first")
    second = right.selectbox("against", [title for title in answers if title != first], key="pair_second")
    outcome = disagreement_outcome(answers[first], answers[second], labels)
    choices = {f"only {first} right": outcome["first_right"], f"only {second} right": outcome["second_right"],
               "both wrong": outcome["both_wrong"]}
    shown = st.radio("Show", list(choices), horizontal=True, key="pair_outcome",
                     format_func=lambda choice: f"{choice} ({len(choices[choice]):,})")
    indices = choices[shown]
    prediction_gallery(images, labels, indices[:40], usable,
                       f"**{first} and {second} disagree on {sum(map(len, choices.values())):,} digits; {shown}: "
                       f"{len(indices):,}**{' (first 40)' if len(indices) > 40 else ''}", "disagreement")


def digit_map() -> None:
    st.markdown("The test digits as a model sees them: its features before the last layer, projected to 2-D with "
                "UMAP. Digits it finds alike sit together; × marks the ones it misreads. Click a point, or drag a "
                "box or lasso, to see those digits.")
    with_maps = {}
    for entry in entries:
        try:
            loaded = feature_map(entry)
        except RecordError as error:
            st.warning(f"**{entry.title}**: its map cannot be shown: {error}", icon=":material/error:")
            continue
        if loaded is not None:
            with_maps[entry.title] = (entry, loaded)
    missing_maps = [entry.title for entry in entries if entry.title not in with_maps]
    if missing_maps:
        st.caption(f"No map for {', '.join(missing_maps)}: `{COMMAND.format(part='map')}`.")
    test = dataset_split("test", chosen_dataset())
    if not with_maps or test is None:
        return
    images, labels = test
    entry, projection = with_maps[st.selectbox("Model", list(with_maps), key="map_model")]
    drawing = st.session_state.get(LAST_DRAWING_KEY) if chosen_dataset() == "mnist" else None  # a drawn digit
    placement = place(projection, entry.network, drawing) if drawing is not None else None
    wrong = projection.predictions != projection.labels
    event = st.plotly_chart(
        digit_map_figure(projection.coordinates, projection.labels, projection.indices, ("UMAP 1", "UMAP 2"), wrong,
                         placement.xy if placement is not None else None, list(get_dataset(chosen_dataset()).classes)),
        key=f"feature_map_{entry.name}", on_select="rerun", selection_mode=("points", "box", "lasso"))
    st.caption(f"{len(projection.indices):,} test digits; {int(wrong.sum())} misread by {entry.title}.")
    if placement is not None:
        nearest = [int(index) for index in placement.nearest]
        left, right = st.columns([1, 5])
        left.image(enlarge(drawing, 84), caption="your drawing (★)")
        digits = [int(labels[index]) for index in nearest]
        common = max(set(digits), key=digits.count)
        right.markdown(f"Your drawing sits among these digits ({digits.count(common)} of {len(digits)} are "
                       f"{common}s):")
        right.image([enlarge(images[index].numpy(), 56) for index in nearest],
                    caption=[f"#{index} · {labels[index]}" for index in nearest])
    else:
        st.caption("Draw a digit on the Draw page and it is placed on this map, among its nearest test digits.")
    picked_on_map(event, images, labels)


def real_input() -> None:
    st.markdown("The test digits were prepared the way the models were trained. Real input is not: other writers' "
                "digits, and MNIST's own as close-up photos, scans and small pictures deliver them. Each picture "
                "goes through the app's preprocessing, which **refuses** pictures it finds no digit in (no model "
                "sees those); the models then read the rest **right** or **wrong**. Controls hold no digit: refusing "
                "them is right.")
    try:
        results = load_real_input_results()
    except RecordError as error:
        st.warning(f"The real-input results cannot be shown: {error}. `{REAL_INPUT_COMMAND}` measures them again.",
                   icon=":material/error:")
        return
    if results is None:
        st.info(f"Not measured yet: `{REAL_INPUT_COMMAND}` writes `{resolve_results_path().name}`.")
        return
    selected = selected_entries()
    names = shown_models(results, [entry.name for entry in selected])
    titles = results.titles | {entry.name: entry.title for entry in selected}
    unmeasured = [entry.title for entry in selected if entry.name not in names]
    if unmeasured:
        st.caption(f"Not measured on real input: {', '.join(unmeasured)}.")
    if not names:
        return
    st.markdown("**Right on each source**, refused pictures counted as not right:")
    st.dataframe(summary_rows(results, titles, names), hide_index=True, column_config={
        source: st.column_config.NumberColumn(format="percent")
        for source in [*(source.name for source in results.digit_sources), "all digit sources"]})
    st.markdown("\n".join(f"- `{source.name}` ({source.pictures:,} pictures): {source.description}"
                           for source in results.sources.values()))
    for name, why in results.skipped.items():
        st.caption(f"Not measured: `{name}` ({why}).")
    source = results.sources[st.selectbox("Source", list(results.sources), key="real_input_source")]
    st.plotly_chart(real_input_figure(source, titles, names), key="real_input_chart")
    st.dataframe(source_rows(source, titles, names), hide_index=True,
                 column_config={"right of all": st.column_config.NumberColumn(format="percent")})
    found = ", ".join(f"{finding.lower().replace('_', ' ')} {count:,}" for finding, count in source.findings.items())
    st.caption(f"Refused for: {found or 'nothing refused'}.")


{SECTIONS[0]: robustness, SECTIONS[1]: calibration, SECTIONS[2]: selective, SECTIONS[3]: disagreements,
 SECTIONS[4]: digit_map, SECTIONS[5]: real_input}[section]()
