"""What the pages say in words, computed from the library's records; pure functions, tested without a browser."""

from __future__ import annotations

import time

from mnist_models.novelty import DEFAULT_FALSE_REJECTION_RATE
from mnist_models.store.catalog import CatalogEntry, Prediction
from mnist_models.training.worker import Job, JobState

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


def decision_row(row_probabilities, title: str) -> str:
    """When a row-by-row reader made up its mind: the first row from which its answer never changes again."""
    answers = [int(row.argmax()) for row in row_probabilities]
    final, settled = answers[-1], len(answers)
    while settled > 1 and answers[settled - 2] == final:
        settled -= 1
    return (f"{title} reads the digit one row at a time, top to bottom. It settled on **{final}** at row {settled} "
            f"of {len(answers)} and kept that answer to the end ({float(row_probabilities[-1].max()):.0%} sure).")


def flip_order(epsilons: dict[str, float | None]) -> str:
    """Which models an attack flips first, from the smallest ε that changes each one's answer."""
    flipped = sorted((epsilon, title) for title, epsilon in epsilons.items() if epsilon is not None)
    held = [title for title, epsilon in epsilons.items() if epsilon is None]
    parts = [f"{title} at ε = {epsilon:.2f}" for epsilon, title in flipped]
    sentence = f"Flipped first to last: {', '.join(parts)}." if parts else "No model flipped within the range searched."
    return sentence + (f" Held within the range searched: {', '.join(held)}." if held and parts else "")
