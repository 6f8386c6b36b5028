"""The Train page's hyperparameter search: start, watch and cancel a study run by the background worker (see
``mnist_models.tuning``), and save its best trial as a run. Everything shown is read from Optuna's storage in the runs
folder, so a study started before a server restart, or from the command line, is shown and can be extended here."""

from __future__ import annotations

import datetime
from typing import Any

import optuna
import plotly.graph_objects as go
import streamlit as st
from optuna.trial import TrialState

from mnist_models import tuning
from mnist_models.errors import DigitLabError
from mnist_models.jobs.worker import JobAction, StudyOrder, TrainingWorker
from mnist_models.models.registry import MODEL_NAMES, get_spec

from .train_options import SUBSET_CHOICES, subset_label

NEW_STUDY = ""  # the study choice that starts a new one
TARGET = "validation accuracy"
IMPORTANCE_MIN_TRIALS = 2  # Optuna's importance evaluators need at least two complete trials
DEFAULT_SUBSET = 5000  # trials on a subset: many trials in the time of a few full trainings
DEFAULT_TRIALS, DEFAULT_MAX_EPOCHS = 10, 2


def default_name(model: str, taken: set[str]) -> str:
    """The model's name for its first study, then ``model-2``, ``model-3``, ..."""
    name, number = model, 1
    while name in taken:
        number += 1
        name = f"{model}-{number}"
    return name


def trial_rows(study: optuna.Study, now: datetime.datetime | None = None) -> list[dict[str, Any]]:
    """One row per trial: number, state, validation accuracy (for a pruned, failed or running trial, its last
    reported epoch's), epochs reported, duration (so far, for a running trial) and every param."""
    now = now or datetime.datetime.now()
    rows = []
    for trial in study.get_trials(deepcopy=False):
        end = trial.datetime_complete or (now if trial.state is TrialState.RUNNING else None)
        reported = trial.intermediate_values
        value = trial.value if trial.value is not None else reported[max(reported)] if reported else None
        rows.append({"trial": trial.number, "state": trial.state.name.lower(), TARGET: value,
                     "epochs reported": len(reported),
                     "duration (s)": (end - trial.datetime_start).total_seconds()
                     if end is not None and trial.datetime_start is not None else None,
                     **trial.params})
    return rows


def study_figures(study: optuna.Study) -> list[tuple[str, go.Figure | str]]:
    """Optuna's own plotly figures of the study, each with its title, or in its place why it cannot be drawn yet."""
    complete = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    if not complete:
        return [("Optimisation history", "No trial has completed yet.")]
    figures: list[tuple[str, go.Figure | str]] = [
        ("Optimisation history", optuna.visualization.plot_optimization_history(study, target_name=TARGET))]
    if complete < IMPORTANCE_MIN_TRIALS:
        figures.append(("Parameter importances", f"Needs {IMPORTANCE_MIN_TRIALS} complete trials; there is one."))
    else:
        figures.append(("Parameter importances",
                        optuna.visualization.plot_param_importances(study, target_name=TARGET)))
    figures.append(("Parallel coordinates", optuna.visualization.plot_parallel_coordinate(study, target_name=TARGET)))
    return figures


def _start(worker: TrainingWorker) -> None:
    """The Start button: create the study now (so the page lists it at once, and a name taken by another model's
    study is refused here), then hand its trials to the worker."""
    state = st.session_state
    chosen = state["tune_study"]
    model = state["tune_model"] if chosen == NEW_STUDY else tuning.load_study(chosen).user_attrs["model"]
    name = chosen or state["tune_name"].strip() or default_name(model, set(state["tune_names"]))
    order = StudyOrder(name=name, storage=tuning.storage_url(), model=model, trials=int(state["tune_trials"]),
                       train_subset=state["tune_subset"], max_epochs=int(state["tune_max_epochs"]))
    try:
        if not worker.busy:  # a refused request leaves no empty study behind
            tuning.open_study(model, name, order.storage)
        worker.tune(order)
    except (DigitLabError, ValueError) as error:  # busy, or the name belongs to another model's study
        state["tune_problem"] = f"Not started: {error}"
    else:
        state["tune_study"] = name


def _save_best(worker: TrainingWorker, name: str) -> None:
    study = tuning.load_study(name)
    try:
        worker.save_best(StudyOrder(name=name, storage=tuning.storage_url(), model=study.user_attrs["model"]),
                         tuning.best_config(study))
    except (DigitLabError, ValueError) as error:
        st.session_state["tune_problem"] = f"Not saved: {error}"


def search_section(worker: TrainingWorker, trainable: int | None) -> None:
    """The section: the study's settings and Start, then the chosen study live (see ``study_panel``)."""
    st.subheader("Hyperparameter search")
    st.caption("Optuna searches the learning rate, batch size, epochs, augmentation strength and, where the model has "
               "them, dropout and width, one trial at a time in the background training process; its median pruner "
               "stops trials behind the others. Only validation accuracy is used: the test set is touched when the "
               "best trial is saved as a run. Studies are kept in `studies.db` in the runs folder: choose one to "
               "watch it, extend it or save its best trial.")
    summaries = {summary.study_name: summary for summary in tuning.study_summaries()}
    st.session_state["tune_names"] = list(summaries)
    if st.session_state.get("tune_study") not in (NEW_STUDY, *summaries):  # deleted meanwhile, e.g. with the file
        st.session_state["tune_study"] = NEW_STUDY
    title_of = {name: get_spec(name).title for name in MODEL_NAMES}

    def describe(name: str) -> str:
        if name == NEW_STUDY:
            return "a new study"
        # no trial count here: a selectbox keeps the labels it was first given while its options stay the same
        return f"{name} ({title_of.get(summaries[name].user_attrs.get('model', ''), '?')})"

    left, middle, right = st.columns(3)
    chosen = left.selectbox("Study", [NEW_STUDY, *summaries], format_func=describe, key="tune_study",
                            help="A new study, or an existing one to watch, extend with more trials, or save.")
    if chosen == NEW_STUDY:
        model = middle.selectbox("Model", MODEL_NAMES, format_func=title_of.__getitem__, key="tune_model")
        right.text_input("Study name", key="tune_name", placeholder=default_name(model, set(summaries)))
    left.number_input("Trials to add", 1, 500, DEFAULT_TRIALS, key="tune_trials")
    middle.select_slider("Training images per trial", SUBSET_CHOICES, DEFAULT_SUBSET, key="tune_subset",
                         format_func=lambda size: subset_label(size, trainable),
                         help="Trials on a subset are quick; the saved best trial trains on every image.")
    right.number_input("Most epochs per trial", 1, 100, DEFAULT_MAX_EPOCHS, key="tune_max_epochs",
                       help="Caps the searched epochs (from 1 to the model's recipe).")
    st.button("Start search" if chosen == NEW_STUDY else "Add trials", type="primary", icon=":material/tune:",
              key="tune_start", on_click=_start, args=(worker,), disabled=trainable is None)
    if problem := st.session_state.pop("tune_problem", None):
        st.error(problem, icon=":material/error:")
    if chosen != NEW_STUDY:
        study_panel(worker, chosen)


def study_panel(worker: TrainingWorker, name: str) -> None:
    """The chosen study as the storage has it, redrawn every two seconds while the worker is busy (the Train page
    reruns in full when it starts or stops)."""

    @st.fragment(run_every=2.0 if worker.busy else None)
    def panel() -> None:
        study = tuning.load_study(name)
        running = next((job for job in worker.snapshot() if job.action is JobAction.TUNE and job.state.active
                        and job.study is not None and job.study.name == name), None)
        if running is not None:
            # Streamlit types a callback as returning None, though it ignores what one returns (cancel's bool)
            st.button("Cancel search", icon=":material/stop:", key="tune_cancel",
                      on_click=worker.cancel,  # pyright: ignore[reportArgumentType]
                      args=(running.request,), help="The trial in progress is recorded as failed; the study keeps "
                                                    "every trial and can be extended later.")
        rows = trial_rows(study)
        if not rows:
            st.info("No trials yet.", icon=":material/hourglass_empty:")
            return
        st.dataframe(rows, hide_index=True, key="tune_trials_table", column_config={
            TARGET: st.column_config.NumberColumn(format="percent"),
            "lr": st.column_config.NumberColumn("learning rate", format="%.2e"),
            "duration (s)": st.column_config.NumberColumn(format="%.1f")})
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if complete:
            best = study.best_trial
            left, right = st.columns([1, 3], vertical_alignment="center")
            left.metric("Best so far", f"{best.value:.2%}", help=f"Validation accuracy of trial {best.number}")
            right.markdown(f"**Trial {best.number}**: " + ", ".join(f"{key} = {value:.3g}" if isinstance(value, float)
                                                                  else f"{key} = {value}"
                                                                  for key, value in best.params.items()))
            right.button("Save the best trial as a run", icon=":material/save:", key="tune_save_best",
                         on_click=_save_best, args=(worker, name), disabled=worker.busy,
                         help="Retrains its settings on every training image and saves the run with its test "
                              "evaluation, in the background like any training; it then joins every page.")
        if saved := study.user_attrs.get("saved_run"):
            st.success(f"Trial {saved['trial']} was saved as the run **{saved['run']}**.",
                       icon=":material/check_circle:")
        for title, figure in study_figures(study):
            if isinstance(figure, str):
                st.caption(f"**{title}**: {figure}")
            else:
                st.plotly_chart(figure, key=f"tune_{title}")

    panel()
