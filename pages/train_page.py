"""Train: choose models and hyperparameters, train in the background while watching live, cancel, compare, delete;
complete, resume or delete what an interrupted training left."""

import streamlit as st

from dashboard.cache import catalog, data_root, dataset_split
from dashboard.figures import live_training_figure
from dashboard.replica import training_place
from dashboard.sidebar import chosen_dataset
from dashboard.text import progress_line, stopwatch, target_verdict
from dashboard.train_options import (
    ONE_CLICK_MODEL,
    ONE_CLICK_TARGET,
    SUBSET_CHOICES,
    WEIGHT_LABELS,
    architecture_settings,
    dataset_setting,
    one_click_config,
    recipe,
    subset_label,
    weight_choices,
)
from dashboard.tuning_view import search_section
from dashboard.widgets import leaderboard, leaderboard_table
from mnist_models.data import VALIDATION_SIZE, dataset_available, get_dataset
from mnist_models.devices import available_devices
from mnist_models.errors import DigitLabError
from mnist_models.jobs.worker import JobAction, JobState, shared_worker
from mnist_models.models.registry import MODEL_NAMES, get_spec
from mnist_models.store.runs import delete_run
from mnist_models.training import recovery
from mnist_models.training.config import OPTIMIZERS, SCHEDULES, TrainConfig
from mnist_models.training.locking import TrainingBusy, acquire_training_lock, training_lock_holder

BATCH_SIZES = (16, 32, 64, 128, 256, 512, 1024)

worker = shared_worker()
title_of = {name: get_spec(name).title for name in MODEL_NAMES}

st.title("Train a model")
st.caption("Training runs in a background process on the server, at a lower priority than the pages: rerun, switch "
           "pages or close the tab and it goes on; come back here to watch it. One request trains at a time on this "
           "machine, its models one after another. Finished runs are saved under `runs/` and join the other pages "
           "beside the shipped models; each finished epoch is saved as it ends, so stopping the server loses at most "
           "the epoch in progress.")


def saved_runs() -> None:
    """The runs saved in runs/ (shared by every replica), with Delete."""
    st.subheader("Saved runs")
    runs = [entry for entry in catalog() if entry.is_run]
    if not runs:
        st.caption("No saved runs yet. Each finished or cancelled run is saved here and appears on the other pages.")
    else:
        leaderboard_table(leaderboard(runs))
        broken = [entry for entry in runs if not entry.available]
        for entry in broken:
            st.error(f"**{entry.title}** cannot be loaded: {entry.error}", icon=":material/error:")
        left, right = st.columns([3, 1], vertical_alignment="bottom")
        doomed = left.selectbox("Run", [entry.name for entry in runs], format_func={e.name: e.title for e in runs}.get,
                                key="delete_run_choice")
        if right.button("Delete run", icon=":material/delete:", key="delete_run"):
            try:
                delete_run(doomed)
            except KeyError:
                st.toast(f"{doomed} was already deleted (in another tab?).")
            else:
                st.toast(f"Deleted {doomed}.")
            st.rerun()


place = training_place()
if not place.here:  # another replica trains (scripts/serve_replicas.sh): its progress can only be watched there
    where = f"[its Train page]({place.url})" if place.url else "the server that trains"
    st.info(f"Training is not offered on this server: another dashboard process serving this site trains, one "
            f"request at a time, and its live progress can be watched on {where}. Runs it saves appear here too.",
            icon=":material/model_training:")
    saved_runs()
    st.stop()

# MNIST's training split: what the one click trains on, and the size the form's subsets are offered against
# (Fashion-MNIST's is as large); a run on the dataset chosen in the form checks that one when it is started.
mnist_train = dataset_split("train")
trainable = len(mnist_train[1]) - VALIDATION_SIZE if mnist_train is not None else None
devices = available_devices()


def submit(configs: list[TrainConfig]) -> None:
    """Start a request from any button; what refuses it (another training, no room for the files) is said there."""
    try:
        worker.submit(configs)
    except TrainingBusy as error:
        st.error(str(error), icon=":material/hourglass_top:")
    except DigitLabError as error:  # the runs folder is read-only or too full: refused before training
        st.error(f"Not started: {error}", icon=":material/hard_drive:")


if st.button(f"Train to {ONE_CLICK_TARGET:.0%} now", type="primary", icon=":material/bolt:", key="one_click",
             disabled=mnist_train is None,
             help=f"One epoch of the {title_of[ONE_CLICK_MODEL]}'s own recipe on every training image, with a "
                  f"stopwatch; saved as a run like any other."):
    submit([one_click_config(st.session_state.get("train_device", devices[0]))])
live_area = st.container()


def model_settings(name: str) -> dict:
    """The widgets for one model's hyperparameters, starting from its shipped recipe; returns TrainConfig fields."""
    base = recipe(name)
    key = f"train_{name}_"
    left, middle, right = st.columns(3)
    values = {
        "epochs": left.number_input("Epochs", 1, 100, base.epochs, key=key + "epochs"),
        "batch_size": left.select_slider("Batch size", BATCH_SIZES, base.batch_size, key=key + "batch_size"),
        "lr": middle.number_input("Learning rate", 1e-4, 2.0, base.lr, step=1e-4, format="%.4f", key=key + "lr"),
        "optimizer": middle.selectbox("Optimizer", OPTIMIZERS, OPTIMIZERS.index(base.optimizer),
                                      key=key + "optimizer"),
        "schedule": middle.selectbox("Learning-rate schedule", SCHEDULES, SCHEDULES.index(base.schedule),
                                     key=key + "schedule"),
        # the recipe's Adam betas come with the recipe (TrainConfig.for_model), so they need no widget here
        "label_smoothing": middle.slider("Label smoothing", 0.0, 0.3, float(base.label_smoothing), 0.05,
                                         key=key + "label_smoothing",
                                         help="Share of each target spread over the other classes."),
        "augment": right.toggle("Augmentation (rotate, shift, zoom)", base.augment, key=key + "augment"),
        "augment_strength": right.slider("Augmentation strength", 0.0, 2.0, base.augment_strength, 0.1,
                                         key=key + "augment_strength"),
        "room_augment": right.toggle("Train for the room", base.room_augment, key=key + "room_augment",
                                     help="Also what real input changes: pen widths, low resolution and blur, slant, "
                                          "contrast (the Evidence page's Real input section measures it)"),
    }
    architecture = {}
    for setting, default in architecture_settings(name):
        if setting.options:
            architecture[setting.key] = right.selectbox(setting.label, setting.options,
                                                        setting.options.index(default), key=key + setting.key,
                                                        help=setting.help)
        elif isinstance(default, float):
            architecture[setting.key] = right.slider(setting.label, setting.minimum, setting.maximum, default,
                                                     setting.step, key=key + setting.key, help=setting.help)
        else:
            architecture[setting.key] = right.number_input(setting.label, int(setting.minimum), int(setting.maximum),
                                                           default, int(setting.step), key=key + setting.key,
                                                           help=setting.help)
    values["architecture"] = architecture
    weights = weight_choices(name)
    if weights:
        values["weights"] = right.selectbox(
            "Initial weights", weights, format_func=WEIGHT_LABELS.get,
            key=key + "weights", help="ImageNet needs torchvision's weights file in the torch hub cache; offline "
                                      "it is not there and such a run fails with instructions.")
    return values


chosen = st.multiselect("Models to train", MODEL_NAMES, default=["cnn"], format_func=title_of.get,
                        key="train_models", help="Each starts from the recipe of its shipped checkpoint.")
with st.form("train_form"):
    choices = {}
    for name, tab in zip(chosen, st.tabs([title_of[name] for name in chosen]) if chosen else [], strict=True):
        with tab:
            choices[name] = model_settings(name)
    left, middle, right = st.columns(3)
    subset = left.select_slider("Training images", SUBSET_CHOICES, None,
                                format_func=lambda size: subset_label(size, trainable), key="train_subset",
                                help=f"A subset makes a quick run; validation always uses the same "
                                     f"{VALIDATION_SIZE:,} held-out images.")
    seed = middle.number_input("Seed", 0, 2**31 - 1, 0, key="train_seed")
    dataset = middle.selectbox(**dataset_setting(chosen_dataset()))
    device = right.selectbox("Device", devices, key="train_device", disabled=len(devices) == 1,
                             help="Only the CPU is available on this machine." if len(devices) == 1 else None)
    start = st.form_submit_button("Start training", type="primary", icon=":material/play_arrow:",
                                  disabled=not chosen or mnist_train is None)

if start:
    configs, problems = [], []
    for name, values in choices.items():
        try:
            configs.append(TrainConfig.for_model(name, **values, train_subset=subset, seed=int(seed), device=device,
                                                 dataset=dataset))
        except ValueError as error:
            problems.append(f"**{title_of[name]}**: {error}")
    if dataset != "mnist" and not dataset_available(data_root(), dataset):
        problems.append(f"**{get_dataset(dataset).title}** is not in the data folder ({data_root()}), so nothing "
                        f"can be trained on it")
    if problems:
        st.error("Not started, these settings are invalid:\n\n" + "\n\n".join(problems), icon=":material/error:")
    else:
        submit(configs)


def show_job(job) -> None:
    fraction, text = progress_line(job)
    if job.model == ONE_CLICK_MODEL:  # the speed demo: a stopwatch beside the bar
        bar, clock = st.columns([5, 1], vertical_alignment="bottom")
        bar.progress(fraction, text=text)
        clock.metric("Stopwatch", stopwatch(job), help="Since training started: loading the data, training, testing "
                                                       "and saving.")
    else:
        st.progress(fraction, text=text)
    if job.state is JobState.FAILED:
        st.error(f"**{job.title} failed:** {job.error}. Nothing else was changed.", icon=":material/error:")
    elif job.action is JobAction.COMPLETE and job.run_id and not job.state.active:
        st.success(f"The interrupted **{job.run_title}** was evaluated and saved with its finished epochs.",
                   icon=":material/check_circle:")
    elif job.state is JobState.CANCELLED:
        saved = f" It was saved as **{job.run_title}** with its finished epochs." if job.run_id else ""
        st.warning(f"**{job.title}** was cancelled.{saved}", icon=":material/cancel:")
    if job.events and job.action is not JobAction.TUNE:  # a study's trials: see the search section's figures
        st.plotly_chart(live_training_figure(job.events, job.title), key=f"live_{job.number}")
    if job.run_id and not job.state.active:
        pair = [entry for entry in catalog() if entry.name in (job.model, job.run_id)]
        run = next((entry for entry in pair if entry.name == job.run_id), None)
        if job.model == ONE_CLICK_MODEL and run and run.evaluation and run.meta and run.meta.train_time_s is not None:
            reached, sentence = target_verdict(run.evaluation.metrics.accuracy, run.evaluation.metrics.count,
                                               run.meta.train_time_s, ONE_CLICK_TARGET)
            (st.success if reached else st.warning)(f"**{run.title}**: {sentence}", icon=":material/timer:")
        st.markdown(f"**{job.run_title}** on the {job.metrics.count:,} test images, next to the shipped "
                    f"{job.title}:")
        leaderboard_table(leaderboard(pair))
    with st.expander(f"Log of {job.title}", expanded=job.state is JobState.FAILED):
        st.code("\n".join(job.log) or "waiting to start", language=None)


polling_busy = worker.busy


@st.fragment(run_every=1.0 if polling_busy else 5.0)
def live_panel() -> None:
    """Redrawn every second while training, every five seconds otherwise. When training starts (from any tab) or
    ends, the whole app reruns: the polling rate follows, and every page sees the new run."""
    if worker.busy != polling_busy:
        st.rerun()
    jobs = worker.snapshot()
    active = any(job.state.active for job in jobs)
    if not jobs:
        st.info(f"Nothing has been trained since the server started. Choose models below and start, or press "
                f"**Train to {ONE_CLICK_TARGET:.0%} now**.",
                icon=":material/model_training:")
        return
    st.subheader("Training now" if active else "Last training request")
    if active:
        st.button("Cancel training", icon=":material/stop:", on_click=worker.cancel, args=(jobs[0].request,),
                  key="cancel_training", help="The running model keeps its finished epochs and is saved as "
                                              "cancelled; queued ones are dropped.")
    for job in jobs:
        show_job(job)


with live_area:
    live_panel()


def recover(item: recovery.IncompleteTraining, action: JobAction) -> None:
    try:
        worker.recover(item, action)
    except (DigitLabError, ValueError) as error:  # busy, unreadable, or no room for resuming
        st.session_state["recovery_problem"] = f"{item.title}: {error}"


def delete_incomplete(item: recovery.IncompleteTraining) -> None:
    try:
        with acquire_training_lock("the Train page, deleting an interrupted training"):
            recovery.delete(item)
    except TrainingBusy as error:
        st.session_state["recovery_problem"] = str(error)


def interrupted_trainings() -> None:
    """What trainings killed outright left (the server stopped mid-save, a crash), each with what can be done."""
    incomplete = recovery.find_incomplete()
    if not incomplete:
        return
    st.subheader("Interrupted trainings")
    holder = training_lock_holder()
    if worker.busy or holder is not None:
        st.caption(f"{len(incomplete)} file(s) left by interrupted trainings; they can be completed, resumed or "
                   f"deleted here once the training now running ({holder or 'this server'}) has finished.")
        return
    st.caption("Each finished epoch of a training is saved as it ends. **Complete** evaluates the saved weights and "
               "adds them as a cancelled run; **Resume** trains the remaining epochs; **Delete** removes the file.")
    if problem := st.session_state.pop("recovery_problem", None):
        st.error(problem, icon=":material/error:")
    for item in incomplete:
        text, *buttons = st.columns([6, 1, 1, 1], vertical_alignment="center")
        text.markdown(item.describe())
        for column, action in zip(buttons, item.actions, strict=False):
            key = f"{action}_incomplete_{item.name}"
            if action == "delete":
                column.button("Delete", key=key, icon=":material/delete:", on_click=delete_incomplete, args=(item,))
            else:
                column.button(action.capitalize(), key=key, on_click=recover, args=(item, JobAction(action)),
                              icon=":material/task_alt:" if action == "complete" else ":material/play_arrow:")


search_section(worker, trainable)
interrupted_trainings()

saved_runs()
