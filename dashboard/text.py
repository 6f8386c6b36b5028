"""What the pages say in words, computed from the library's records; pure functions, tested without a browser."""

from __future__ import annotations

import time

from mnist_models.jobs.worker import Job, JobState
from mnist_models.models.architectures import Reading
from mnist_models.models.registry import MODEL_SPECS, get_spec
from mnist_models.novelty import DEFAULT_FALSE_REJECTION_RATE
from mnist_models.serving.catalog import CatalogEntry, Prediction
from mnist_models.store.evidence_records import overall_robustness

UNKNOWN = "unknown"


def format_duration(seconds: float) -> str:
    """'m:ss' below an hour, 'h hours mm min' above."""
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes}:{seconds:02d}" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


def progress_line(job: Job) -> tuple[float, str]:
    """(fraction done, one line of text) for a job's progress bar."""
    latest = job.latest
    if job.state is JobState.QUEUED:
        return 0.0, f"{job.title}: queued"
    if job.state is JobState.EVALUATING:
        return 1.0, f"{job.title}: evaluating on the test set and saving"
    if latest is None:
        return 0.0, f"{job.title}: {'loading the data and building the model' if job.state.active else job.state.value}"
    text = (f"{job.title}: epoch {latest.epoch}/{latest.epochs} · {latest.fraction:.0%} · "
            f"{latest.images_per_s:,.0f} images/s")
    if job.state is JobState.RUNNING:
        text += f" · about {format_duration(latest.eta_s)} left"
    return latest.fraction, text


def stopwatch(job: Job, now: float | None = None) -> str:
    """Seconds since the job started, to a tenth, stopping when it ends: the wall time an audience waits, loading the
    data and testing included."""
    if job.started is None:
        return "0.0 s"
    end = job.ended if job.ended is not None else time.time() if now is None else now
    return f"{max(end - job.started, 0.0):.1f} s"


def target_verdict(accuracy: float, count: int, train_time_s: float, target: float) -> tuple[bool, str]:
    """Whether a saved run reached ``target`` test accuracy, and one sentence saying so with its training time."""
    reached = accuracy >= target
    sentence = f"{accuracy:.2%} on the {count:,} test images after {train_time_s:.1f} s of training"
    return reached, sentence + (f": {target:.0%} reached." if reached else f": short of {target:.0%} this time.")


def agreement(predictions: list[Prediction]) -> str:
    """One sentence on whether the models agree, naming the dissenters."""
    if not predictions:
        return "No model is available."
    votes: dict[int, list[str]] = {}
    for prediction in predictions:
        votes.setdefault(prediction.digit, []).append(prediction.title)
    if len(votes) == 1:
        digit = next(iter(votes))
        return f"All {len(predictions)} models agree: it is a {digit}."
    ranked = sorted(votes.items(), key=lambda item: -len(item[1]))
    parts = [f"{', '.join(titles)} → {digit}" for digit, titles in ranked]
    return f"The models disagree: {'; '.join(parts)}."


def provenance(entry: CatalogEntry) -> str:
    """Two lines on where a loaded checkpoint came from; fields an older or hand-written file lacks read 'unknown'."""
    meta = entry.meta
    if meta is None:
        raise ValueError(f"{entry.name} is not loaded: there is no checkpoint to describe")
    if entry.evaluation is not None:
        accuracy = f"{entry.evaluation.metrics.accuracy:.2%}"
    else:
        accuracy = "unknown (evaluation unusable)" if entry.evaluation_error else "not evaluated"
    epochs = meta.epochs_completed if meta.epochs_completed is not None else UNKNOWN
    seconds = f"{meta.train_time_s:.0f} s" if meta.train_time_s is not None else "an unknown time"
    return (f"test accuracy {accuracy} · {epochs} epochs in {seconds} on {meta.device or 'an unknown device'}  \n"
            f"init: {meta.initialisation or UNKNOWN} · trained {meta.created[:10] if meta.created else UNKNOWN} · "
            f"torch {meta.versions.get('torch', UNKNOWN)}")


def novelty_verdict(predictions: list[Prediction]) -> str:
    """Why no answer is given when the models' own evidence says the input is unlike any digit they know."""
    flagged = [prediction.title for prediction in predictions if prediction.novel]
    calibrated = sum(prediction.novel is not None for prediction in predictions)
    return (f"**This does not look like a digit to the models**, so they give no answer: {len(flagged)} of "
            f"{calibrated} ({', '.join(flagged)}) find it unlike the digits they were trained on (their "
            f"out-of-distribution score is above the level that {1 - DEFAULT_FALSE_REJECTION_RATE:.0%} of real digits "
            f"they never trained on stay under).")


def decision_step(step_probabilities, title: str, reading: Reading) -> str:
    """When a step-by-step reader made up its mind: the first row or column from which its answer never changes."""
    answers = [int(step.argmax()) for step in step_probabilities]
    final, settled = answers[-1], len(answers)
    while settled > 1 and answers[settled - 2] == final:
        settled -= 1
    what = "row" if reading.pixels_per_step == 1 else f"{reading.unit} of features ({reading.pixels_per_step} pixels)"
    return (f"{title} reads the digit one {what} at a time, {reading.direction}. It settled on **{final}** at "
            f"{reading.unit} {settled} of {len(answers)} and kept that answer to the end "
            f"({float(step_probabilities[-1].max()):.0%} sure).")


def flip_order(epsilons: dict[str, float | None]) -> str:
    """Which models an attack flips first, from the smallest ε that changes each one's answer."""
    flipped = sorted((epsilon, title) for title, epsilon in epsilons.items() if epsilon is not None)
    held = [title for title, epsilon in epsilons.items() if epsilon is None]
    parts = [f"{title} at ε = {epsilon:.2f}" for epsilon, title in flipped]
    sentence = f"Flipped first to last: {', '.join(parts)}." if parts else "No model flipped within the range searched."
    return sentence + (f" Held within the range searched: {', '.join(held)}." if held and parts else "")


def robustness_ranking(curves_by_title: dict) -> str:
    """The most and least robust models, by the mean of their robustness scores."""
    scores = sorted(((overall_robustness(curves), title) for title, curves in curves_by_title.items()), reverse=True)
    if not scores:
        return "No robustness curves computed for the selected models."
    (best, best_title), (worst, worst_title) = scores[0], scores[-1]
    return (f"Most robust overall: **{best_title}** ({best:.3f}); least: **{worst_title}** ({worst:.3f}). A score is "
            f"the area under a curve relative to the model's clean accuracy, averaged over the corruptions: 1 means "
            f"no loss at any level.")


def dropout_verdict(curves_by_name: dict, titles: dict[str, str]) -> str:
    """Report 004's claim tested on the evidence: dropout made the basic CNN more robust."""
    claim = "**Report 004: “dropout improved generalization and model robustness.”**"
    if "cnn_dropout" not in curves_by_name or "cnn_basic" not in curves_by_name:
        return f"{claim} Testing it needs the basic CNN and CNN + dropout selected, with their evidence computed."
    with_dropout, without = curves_by_name["cnn_dropout"], curves_by_name["cnn_basic"]
    shared = [name for name in with_dropout if name in without]
    better = [name for name in shared if with_dropout[name].score > without[name].score]
    ours, theirs = overall_robustness(with_dropout), overall_robustness(without)
    verdict = "Holds here" if ours > theirs else "Does not hold here"
    return (f"{claim} {verdict}: {titles['cnn_dropout']} scores {ours:.3f} against {titles['cnn_basic']}'s "
            f"{theirs:.3f}, and is the more robust of the two under {len(better)} of {len(shared)} corruptions"
            f"{' (' + ', '.join(better) + ')' if better else ''}. It is also trained with augmentation (as the "
            f"report's model B was), which this comparison cannot separate from dropout.")


def rnn_verdict(curves_by_name: dict, titles: dict[str, str], accuracy: dict[str, float]) -> str:
    """Report 000's claim tested on the evidence: the RNN struggles next to the CNN."""
    claim = "**Report 000: the RNN “struggles” next to the CNN.**"
    if "rnn" not in curves_by_name or "cnn" not in curves_by_name:
        return f"{claim} Testing it needs the RNN and the CNN selected, with their evidence computed."
    rnn, cnn = overall_robustness(curves_by_name["rnn"]), overall_robustness(curves_by_name["cnn"])
    convolutional = {name: overall_robustness(curves) for name, curves in curves_by_name.items()
                     if name in MODEL_SPECS and get_spec(name).family.convolutional}  # shipped models, not runs
    weaker_than = sum(score > rnn for score in convolutional.values())
    verdict = "Holds here" if rnn < cnn else "Does not hold here"
    clean = (f" On clean test digits it reads {accuracy['rnn']:.2%} against {accuracy['cnn']:.2%}."
             if "rnn" in accuracy and "cnn" in accuracy else "")
    return (f"{claim} {verdict} for robustness: {titles['rnn']} scores {rnn:.3f} against {titles['cnn']}'s "
            f"{cnn:.3f}, below {weaker_than} of the {len(convolutional)} convolutional models.{clean}")


def calibration_ranking(calibrations: dict) -> str:
    """Which model's confidence can be trusted most, before and after temperature scaling."""
    if not calibrations:
        return "No calibration computed for the selected models."
    before = min(calibrations.items(), key=lambda item: item[1].ece_before)
    after = min(calibrations.items(), key=lambda item: item[1].ece_after)
    worst = max(calibrations.items(), key=lambda item: item[1].ece_before)
    return (f"Best calibrated as trained: **{before[0]}** (expected calibration error {before[1].ece_before:.2%}); "
            f"worst: **{worst[0]}** ({worst[1].ece_before:.2%}). After temperature scaling: **{after[0]}** "
            f"({after[1].ece_after:.2%}).")


def selective_sentence(title: str, selective) -> str:
    """What an operator asks: how much can this model answer at the target accuracy, and from what confidence."""
    if selective.coverage_at_target is None:
        return f"{title} never reaches {selective.target:.1%} accuracy, even on the digits it is surest of."
    return (f"{title} is right {selective.target:.1%} of the time on the {selective.coverage_at_target:.1%} of "
            f"digits it is surest of (confidence ≥ {selective.threshold:.4f}), and abstains on the rest.")


def ordinal(number: int) -> str:
    """1st, 2nd, 3rd, 4th, ... 11th, 12th, 13th, ... 21st."""
    suffix = "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"


def listed(names: list[str]) -> str:
    """'A', 'A and B', 'A, B and C'."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def disputed_positions(readings: dict[str, str]) -> list[int]:
    """Positions (from 0) of the digits that the models (title → the number it reads) read differently."""
    length = min((len(text) for text in readings.values()), default=0)
    return [position for position in range(length) if len({text[position] for text in readings.values()}) > 1]


def number_disagreement(readings: dict[str, str]) -> str:
    """One sentence on which digits of a number the models (title → the number it reads) disagree on, and how each
    reads them, the odd ones out first: "Models disagree on the 3rd digit: RNN reads 1, the other 6 read 7."""
    if not readings:
        return "No model is available."
    disputed = disputed_positions(readings)
    if not disputed:
        (title, text), count = next(iter(readings.items())), len(readings)
        return f"{title} reads {text}." if count == 1 else f"All {count} models read {text}."
    parts = []
    for position in disputed:
        votes: dict[str, list[str]] = {}
        for title, text in readings.items():
            votes.setdefault(text[position], []).append(title)
        ranked = sorted(votes.items(), key=lambda item: len(item[1]))
        said = [f"{listed(titles)} read{'s' if len(titles) == 1 else ''} {digit}" for digit, titles in ranked]
        majority = ranked[-1][1]
        if len(majority) > 2 and len(majority) > len(ranked[-2][1]):  # "the other 6", not six titles
            said[-1] = f"the other {len(majority)} read {ranked[-1][0]}"
        parts.append(f"the {ordinal(position + 1)} digit: {', '.join(said)}")
    return f"Models disagree on {'; and on '.join(parts)}."
