"""Command line: inspect, train, tune, evaluate, recover, report, export, the room's drawings, serve.
``digit-lab --help`` (or ``python -m mnist_models``).

Stopping a training: SIGTERM or Ctrl-C drops the epoch in progress and saves the finished ones as a cancelled run in
the runs folder (the model's checkpoint is left as it was); a second Ctrl-C aborts at once. After every epoch the
training's progress is on disk (``<checkpoint>.partial``), so even a training killed outright loses only its current
epoch: ``digit-lab info`` lists what interrupted trainings left, and ``digit-lab recover`` completes (evaluates and
saves as a cancelled run), resumes (trains the remaining epochs) or deletes it.

Exit codes: 0 success; 1 a model failed (its reason is printed, the others still ran); 2 bad usage or missing
data; 73 the output folder cannot take the files (read-only, or not enough free space: checked before training);
75 another training job is running on this machine (the dashboard's or another command's); 130 stopped by SIGTERM
or Ctrl-C (finished checkpoints are kept, the stopped model's finished epochs are saved as a cancelled run, its
previous checkpoint and evaluation are untouched).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import parallel_tuning
from .data import DATASETS, DatasetMissingError, load_dataset, load_mnist, require_dataset
from .devices import training_threads
from .errors import DigitLabError
from .evaluation import EVIDENCE_PARTS, recalibrate, reevaluate, refresh_evidence, validation_split
from .export import refresh_onnx
from .extras import MissingExtra, needs_extra, require_extra
from .models.registry import MODEL_NAMES, MODEL_SPECS, get_spec
from .paths import (
    CHECKPOINT_DIR_ENV,
    DATA_DIR_ENV,
    IN_CHECKOUT,
    REPO_ROOT,
    ROOM_DB_ENV,
    resolve_checkpoint_dir,
    resolve_runs_dir,
)
from .reporting import leaderboard_rows, render_results_markdown, update_results_table
from .stakeholder_report import DEFAULT_REPORT_TITLE
from .store.checkpoints import (
    CHECKPOINT_SUFFIX,
    CheckpointError,
    checkpoint_of_partial,
    checkpoint_path,
    load_checkpoint,
    load_evaluation,
    partial_path,
    shipped_name,
)
from .store.files import StorageError, check_room
from .store.runs import find_run, list_runs
from .training import distributed, recovery
from .training.config import OPTIMIZERS, RECIPES, SCHEDULES, TrainConfig
from .training.locking import TrainingBusy, acquire_training_lock, training_lock_holder
from .training.loop import Progress
from .training.pipeline import SavedModel, TrainResult, resume_training, storage_needed, train_and_save
from .training.stopping import StopRequest, stop_on_signals

if TYPE_CHECKING:  # imported by `digit-lab room` itself, which needs the room extra
    from .store.room_db import RoomCounts, RoomStore

EXIT_FAILED, EXIT_USAGE, EXIT_NO_ROOM, EXIT_BUSY, EXIT_INTERRUPTED = 1, 2, 73, 75, 130
TUNE_TRIALS = 20
RECOVER_ACTIONS = ("list", "complete", "resume", "delete")
TRAIN_OPTIONS = ("epochs", "batch_size", "lr", "optimizer", "schedule", "weight_decay", "betas", "label_smoothing",
                 "augment", "augment_strength", "room_augment", "train_subset", "seed", "device", "weights", "dataset")


class ProgressBar:
    """A one-line progress bar on stderr: epoch, percentage, loss, accuracy, images/s and ETA."""

    def __init__(self, label: str, stream=None) -> None:
        self.label, self.stream = label, stream or sys.stderr

    def __call__(self, event: Progress) -> None:
        width = 24
        filled = int(width * event.fraction)
        line = (f"\r{self.label:<12} epoch {event.epoch}/{event.epochs} [{'#' * filled}{'.' * (width - filled)}] "
                f"{event.fraction:4.0%} loss {event.loss:.4f} acc {event.accuracy:.2%} "
                f"{event.images_per_s:,.0f} img/s ETA {event.eta_s:4.0f}s")
        if event.kind == "epoch":
            line += f" | val loss {event.val_loss:.4f} acc {event.val_accuracy:.2%}\n"
        self.stream.write(line)
        self.stream.flush()


def _parse_assignment(text: str) -> tuple[str, Any]:
    key, separator, raw = text.partition("=")
    if not separator or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(raw)
    except json.JSONDecodeError:
        return key, raw


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return int(text)


def _config(name: str, args: argparse.Namespace) -> TrainConfig:
    """``name``'s recipe (and ``--recipe``, and the options given); a ValueError for settings it refuses."""
    options = {option: getattr(args, option) for option in TRAIN_OPTIONS}
    if not get_spec(name).pretrained_variants:
        options.pop("weights")
    return TrainConfig.for_model(name, recipe=args.recipe, architecture=dict(args.arch or []), **options)


def _recover_hint(partial: Path) -> str:
    """What to do with a partial file a stopped command left, or nothing when there is none."""
    if not partial.is_file():
        return ""
    name = checkpoint_of_partial(partial).name.removesuffix(CHECKPOINT_SUFFIX)
    return (f" Its finished epochs are kept in {partial}: `digit-lab recover complete {name}` saves them, `resume` "
            f"trains on, `delete` drops them.")


def _report_saved(name: str, result: TrainResult, saved: SavedModel | None, destination: Path,
                  stop: StopRequest) -> None:
    if saved is None:
        print(f"\n{name}: {stop.reason or 'cancelled'} before its first epoch finished: nothing to save; "
              f"{destination} is unchanged.", file=sys.stderr)
    elif result.cancelled:
        assert saved.run is not None  # a cancelled training is always saved as a run (pipeline._save_result)
        print(f"\n{name}: {stop.reason or 'cancelled'} after {result.epochs_completed} epoch(s), saved as "
              f"{saved.run.run_id} (cancelled, test accuracy {saved.evaluation.metrics.accuracy:.2%}) in "
              f"{saved.checkpoint.parent}; {destination} is unchanged.", file=sys.stderr)
    else:
        print(f"{name}: test accuracy {saved.evaluation.metrics.accuracy:.2%} after {result.train_time_s:.1f} s of "
              f"training → {saved.checkpoint}", file=sys.stderr)


def command_train(args: argparse.Namespace) -> int:
    names = list(MODEL_NAMES) if args.all else args.model
    if not names:
        print("name a model with --model NAME (or --all)", file=sys.stderr)
        return EXIT_USAGE
    try:
        team = distributed.join(args.device)  # under torchrun, this rank of the job (see training/distributed.py)
    except ValueError as error:  # a device this machine lacks
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    dataset = args.dataset or "mnist"
    train_data = load_dataset(dataset, "train", args.data_dir)
    test_data = load_dataset(dataset, "test", args.data_dir)
    output_dir = resolve_checkpoint_dir(args.output_dir or args.checkpoint_dir)
    configs, failures = {}, 0
    for name in names:
        try:
            configs[name] = _config(name, args)
        except ValueError as error:
            failures += 1
            print(f"{name}: failed: {error}", file=sys.stderr)
    stop = StopRequest()
    with team.training_lock("digit-lab train"), stop_on_signals(stop, second_interrupt_aborts=True):
        try:
            check_room(output_dir, sum(storage_needed(config) for config in configs.values()),
                       f"training {', '.join(configs)}")
        except StorageError as error:
            print(f"error: {error}", file=sys.stderr)
            return EXIT_NO_ROOM
        for name, config in configs.items():
            destination = output_dir / f"{shipped_name(name, dataset)}{CHECKPOINT_SUFFIX}"
            if team.is_main:
                print(f"training {name} on {DATASETS[dataset].title}: {config.epochs} epochs, batch "
                      f"{config.batch_size}, {config.optimizer} lr {config.lr} ({config.schedule}), "
                      f"augment={'on' if config.augment else 'off'}"
                      f"{', room augmentation' if config.room_augment else ''}"
                      f"{f', {team.world_size} processes ({team.backend})' if team.distributed else ''}",
                      file=sys.stderr)
            try:
                result, saved = train_and_save(config, train_data, test_data, checkpoint=destination,
                                               progress=ProgressBar(name) if team.is_main else None, cancel=stop)
            except KeyboardInterrupt:
                if team.is_main:
                    print(f"\n{name}: interrupted; {destination} and its evaluation (if any) are unchanged."
                          f"{_recover_hint(partial_path(destination))}", file=sys.stderr)
                return EXIT_INTERRUPTED
            except (DigitLabError, ValueError, RuntimeError, OSError) as error:  # e.g. a full disk: nothing replaced
                failures += 1
                print(f"{name}: failed{team.label}: {error}{_recover_hint(partial_path(destination))}",
                      file=sys.stderr)
                if team.distributed:  # the other ranks cannot go on without this one: end the job
                    team.fail(error)
                    return EXIT_FAILED
                continue
            if team.is_main:
                _report_saved(name, result, saved, destination, stop)
            if stop.is_set():
                return EXIT_INTERRUPTED
    return EXIT_FAILED if failures else 0


def command_tune(args: argparse.Namespace) -> int:
    """Search a model's hyperparameters (see ``mnist_models.tuning``), print its trials, or save its best trial as a
    run. Optuna is imported only here, so the other commands start without it (and run without the extra)."""
    with needs_extra("tune", "digit-lab tune"):
        import optuna

    from . import tuning

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # one line per trial is printed here instead (Optuna's own
    # reports of each trial include a traceback for the one a Ctrl-C cancels)
    storage = tuning.storage_url(args.storage, workers=args.workers)
    if args.list:
        print("\n".join(tuning.list_studies(storage)) or "no studies yet")
        return 0
    if args.show:
        try:
            print("\n".join(tuning.summarise(tuning.load_study(args.show, storage))))
        except KeyError as error:
            print(f"error: {error.args[0]}", file=sys.stderr)
            return EXIT_USAGE
        return 0
    if args.model is None and not (args.study and args.save_best):
        print("name a model with --model NAME (or --study NAME --save-best, --list, --show NAME)", file=sys.stderr)
        return EXIT_USAGE
    stop = StopRequest()
    with acquire_training_lock("digit-lab tune"), stop_on_signals(stop, second_interrupt_aborts=True):
        try:
            if args.workers > 1:
                parallel_tuning.check_shared(storage)
            study = (tuning.open_study(args.model, args.study, storage, args.seed) if args.model else
                     tuning.load_study(args.study, storage))
        except (KeyError, ValueError) as error:
            print(f"error: {error.args[0]}", file=sys.stderr)
            return EXIT_USAGE
        if args.model and args.trials:
            print(f"study {study.study_name}: {args.trials} more trial(s) of {args.model} after {len(study.trials)}, "
                  f"in {storage}" + (f", {args.workers} workers" if args.workers > 1 else ""), file=sys.stderr)
            if args.workers > 1 and not _tune_with_workers(args, study.study_name, storage, stop):
                return EXIT_FAILED
            if args.workers == 1:
                tuning.run_study(study, load_mnist("train", args.data_dir), trials=args.trials,
                                 timeout_s=args.timeout, max_epochs=args.max_epochs, train_subset=args.train_subset,
                                 seed=args.seed, device=args.device, cancel=stop,
                                 on_trial=lambda trial: print(tuning.describe_trial(trial), file=sys.stderr))
        if stop.is_set():
            kept = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,
                                                            optuna.trial.TrialState.PRUNED))
            print(f"{stop.reason}: the study keeps its {len(kept)} complete and pruned trials; run it again to add "
                  f"more", file=sys.stderr)
            return EXIT_INTERRUPTED
        if not args.save_best:
            return 0
        try:
            saved = tuning.save_best_trial(study, load_mnist("train", args.data_dir), load_mnist("test", args.data_dir),
                                           progress=ProgressBar(study.study_name), cancel=stop)
        except StorageError as error:
            print(f"error: {error}", file=sys.stderr)
            return EXIT_NO_ROOM
        except ValueError as error:  # no complete trial to save
            print(f"error: {error}", file=sys.stderr)
            return EXIT_FAILED
        if saved is None or stop.is_set():
            print(f"\n{stop.reason or 'cancelled'}: the best trial was not saved as a run", file=sys.stderr)
            return EXIT_INTERRUPTED
        assert saved.run is not None  # save_best_trial always saves a run
        print(f"best trial {study.best_trial.number} saved as {saved.run.run_id}: test accuracy "
              f"{saved.evaluation.metrics.accuracy:.2%} → {saved.checkpoint}", file=sys.stderr)
    return 0


def _tune_with_workers(args: argparse.Namespace, study_name: str, storage: str, stop: StopRequest) -> bool:
    """Run the study's new trials in ``args.workers`` processes (see ``mnist_models.parallel_tuning``), each with its
    share of the training threads; False when a worker failed (its reason is on stderr)."""
    load_mnist("train", args.data_dir)  # downloaded here when missing, so that no two workers download it at once
    threads = max(1, training_threads() // args.workers)
    orders = [parallel_tuning.WorkerOrder(index=index, model=args.model, study_name=study_name, storage=storage,
                                          data_dir=args.data_dir, trials=share, timeout_s=args.timeout,
                                          max_epochs=args.max_epochs, train_subset=args.train_subset, seed=args.seed,
                                          device=args.device, threads=threads)
              for index, share in enumerate(parallel_tuning.shares(args.trials, args.workers))]
    failed = [(index, code) for index, code in enumerate(parallel_tuning.run_workers(orders, stop)) if code != 0]
    if failed and not stop.is_set():
        print("; ".join(f"worker {index} failed (exit code {code})" for index, code in failed), file=sys.stderr)
    return not failed or stop.is_set()


def _evidence_progress(name: str, stream=None):
    """A one-line progress report on stderr for the long parts of the evidence."""
    stream = stream or sys.stderr

    def report(part: str, done: int, total: int) -> None:
        stream.write(f"\r{name:<12} {part}: {done}/{total}" + ("\n" if done >= total else ""))
        stream.flush()

    return report


def command_evaluate(args: argparse.Namespace) -> int:
    dataset = args.dataset or "mnist"
    models = args.model or [model for model in MODEL_NAMES if dataset == "mnist" or checkpoint_path(
        shipped_name(model, dataset), args.checkpoint_dir).is_file()]  # MNIST's are all expected; others if shipped
    names = [shipped_name(model, dataset) for model in models]
    test_data = load_dataset(dataset, "test", args.data_dir)
    evaluations, failures = {}, 0
    with acquire_training_lock("digit-lab evaluate"):  # no training may replace a checkpoint while it is evaluated
        for name in names:
            try:
                network, meta = load_checkpoint(name, args.checkpoint_dir)
            except CheckpointError as error:
                failures += 1
                print(f"{name}: {error}", file=sys.stderr)
                continue
            validation = validation_split(meta, args.data_dir)
            if validation is None:
                print(f"{name}: no validation images to calibrate the novelty threshold and the temperature on "
                      f"({DATASETS[dataset].title}'s training images are not in the data folder, or these weights "
                      f"were trained on other images)", file=sys.stderr)
                if args.novelty_only:
                    failures += 1
                    continue
            try:
                if args.novelty_only:
                    assert validation is not None  # a --novelty-only model without validation images was skipped above
                    evaluations[name] = recalibrate(network, meta, validation[0])
                elif not args.only:
                    evaluations[name] = reevaluate(network, meta, test_data, not args.no_latency,
                                                   validation[0] if validation is not None else ())
                parts = args.only or ([] if args.no_evidence or args.novelty_only else list(EVIDENCE_PARTS))
                if parts:
                    refresh_evidence(network, meta, test_data, validation, parts, _evidence_progress(name))
            except CheckpointError as error:  # --novelty-only on a checkpoint without a readable evaluation
                failures += 1
                print(f"{name}: {error}", file=sys.stderr)
            except MissingExtra as error:  # the test figures are saved; the evidence needs the optional packages
                failures += 1
                print(f"{name}: the evidence was not computed: {error} (or pass --no-evidence)", file=sys.stderr)
    if args.json:
        print(json.dumps({name: evaluation.summary() for name, evaluation in evaluations.items()}, indent=1))
    elif evaluations:
        print(render_results_markdown(leaderboard_rows(args.checkpoint_dir, names=list(evaluations))))
    return EXIT_FAILED if failures else 0


def command_info(args: argparse.Namespace) -> int:
    rows = []
    for name, spec in MODEL_SPECS.items():
        path = checkpoint_path(name, args.checkpoint_dir)
        try:
            _, meta = load_checkpoint(name, args.checkpoint_dir)
            epochs = meta.epochs_completed if meta.epochs_completed is not None else "unknown"
            status = f"trained {epochs} epochs, {meta.created[:10] if meta.created else 'date unknown'}"
            try:
                status += f", test accuracy {load_evaluation(name, args.checkpoint_dir, meta).metrics.accuracy:.2%}"
            except CheckpointError:
                status += ", not evaluated"
        except CheckpointError as error:
            status = f"unavailable: {error}"
        rows.append({"name": name, "title": spec.title, "input": spec.input_format, "checkpoint": str(path),
                     "status": status, "description": spec.description})
    try:
        data_status = f"found in {require_dataset(args.data_dir)}"
    except DatasetMissingError as error:
        data_status = str(error)
    runs = []
    for run in list_runs():
        try:
            accuracy = f"test accuracy {load_evaluation(run.checkpoint).metrics.accuracy:.2%}"
        except CheckpointError as error:
            accuracy = str(error)
        runs.append({"id": run.run_id, "title": run.title, "checkpoint": str(run.checkpoint), "status": accuracy})
    incomplete, training_now = _incomplete_rows(args.checkpoint_dir), training_lock_holder()
    if args.json:
        print(json.dumps({"models": rows, "runs": runs, "incomplete": incomplete, "training_now": training_now,
                          "dataset": data_status}, indent=1))
        return 0
    for row in rows:
        print(f"{row['name']:<12} {row['title']:<14} {row['input']:<44} {row['status']}")
    print(f"\nSaved runs (the Train page's) in {resolve_runs_dir()}: {len(runs) or 'none'}")
    for run in runs:
        print(f"{run['id']:<20} {run['title']:<24} {run['status']}")
    _print_incomplete(incomplete, training_now)
    print(f"\nMNIST: {data_status}")
    return 0


def _incomplete_rows(checkpoint_dir: str | None) -> list[dict[str, Any]]:
    return [{"name": item.name, "kind": item.kind.value, "title": item.title, "path": str(item.path),
             "epochs_completed": item.epochs_completed, "epochs": item.epochs, "error": item.error,
             "actions": list(item.actions), "description": item.describe()}
            for item in recovery.find_incomplete(checkpoint_dir=checkpoint_dir)]


def _print_incomplete(rows: list[dict[str, Any]], training_now: str | None) -> None:
    print(f"\nInterrupted trainings: {len(rows) or 'none'}")
    for row in rows:
        print(f"{row['name']:<20} {row['description']} [{', '.join(row['actions'])}]")
    if rows:
        print("Act on them with `digit-lab recover complete|resume|delete NAME` (or --all).")
    if training_now:
        print(f"A training is running now ({training_now}): its own progress file is listed until it ends.")


def command_recover(args: argparse.Namespace) -> int:
    """List, complete, resume or delete what interrupted trainings left (see ``training.recovery``)."""
    if args.action == "list":
        _print_incomplete(_incomplete_rows(args.checkpoint_dir), training_lock_holder())
        return 0
    if bool(args.names) == args.all or (args.action == "resume" and args.all):
        print("error: name what to act on (the names `digit-lab recover` lists), or give --all (not with resume)",
              file=sys.stderr)
        return EXIT_USAGE
    failures = 0
    stop = StopRequest()
    with acquire_training_lock("digit-lab recover"), stop_on_signals(stop, second_interrupt_aborts=True):
        try:
            items = (recovery.find_incomplete(checkpoint_dir=args.checkpoint_dir) if args.all else
                     [recovery.find_by_name(name, checkpoint_dir=args.checkpoint_dir) for name in args.names])
        except KeyError as error:
            print(f"error: {error.args[0]}", file=sys.stderr)
            return EXIT_USAGE
        data = functools.cache(lambda dataset, split: load_dataset(dataset, split, args.data_dir))
        for item in items:
            if args.action not in item.actions:
                if args.all:  # --all acts on what offers the action; the rest is listed, not a failure
                    print(f"{item.name}: left as it is (it allows only: {', '.join(item.actions)})", file=sys.stderr)
                    continue
                failures += 1
                print(f"{item.name}: cannot {args.action} it: {item.describe()}", file=sys.stderr)
                continue
            try:
                if args.action == "delete":
                    recovery.delete(item)
                    print(f"{item.name}: deleted {item.path}", file=sys.stderr)
                elif args.action == "complete":
                    saved = recovery.complete(item, data(item.dataset, "test"))
                    print(f"{item.name}: saved as {saved.checkpoint} (test accuracy "
                          f"{saved.evaluation.metrics.accuracy:.2%})", file=sys.stderr)
                else:
                    result, saved = resume_training(item.path, data(item.dataset, "train"), data(item.dataset, "test"),
                                                    progress=ProgressBar(item.name), cancel=stop)
                    _report_saved(item.name, result, saved, item.checkpoint, stop)
            except KeyboardInterrupt:
                print(f"\n{item.name}: interrupted.{_recover_hint(item.path)}", file=sys.stderr)
                return EXIT_INTERRUPTED
            except (DigitLabError, ValueError, RuntimeError, OSError) as error:
                failures += 1
                print(f"{item.name}: failed: {error}", file=sys.stderr)
            if stop.is_set():
                return EXIT_INTERRUPTED
    return EXIT_FAILED if failures else 0


def command_report(args: argparse.Namespace) -> int:
    if args.html:
        return _write_html_report(args)
    table = render_results_markdown(leaderboard_rows(args.checkpoint_dir))
    for document in args.update:
        update_results_table(Path(document), table)
        print(f"updated the results table in {document}", file=sys.stderr)
    if not args.update:
        print(table)
    return 0


def _write_html_report(args: argparse.Namespace) -> int:
    """The stakeholder report. Its charts are the dashboard's Plotly figures, so the app draws it, in a process of
    its own (``python -m dashboard.report_html``): the library never imports the dashboard."""
    require_extra("app", "The stakeholder report (--html)")  # a MissingExtra: main says which extra, exit 2
    arguments = [args.html, "--title", args.title]
    for option, value in (("--checkpoint-dir", args.checkpoint_dir), ("--data-dir", args.data_dir)):
        if value:
            arguments += [option, str(value)]
    for name in args.model or ():
        arguments += ["--model", name]
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (str(REPO_ROOT),
                                                                             os.environ.get("PYTHONPATH"))))}
    return subprocess.run([sys.executable, "-m", "dashboard.report_html", *arguments], env=environment).returncode


def _export_targets(args: argparse.Namespace) -> tuple[list[tuple[str, Path]], list[str]]:
    """(label, checkpoint) pairs to export, and the problems of what was named but cannot be: the registry models'
    checkpoints for ``--dataset`` and every saved run, or only the ``--model`` and ``--run`` named. A model without a
    checkpoint is skipped with the reason, and is a problem only when named."""
    named = bool(args.model or args.run)
    targets, problems = [], []
    for name in args.model or ([] if named else MODEL_NAMES):
        label = shipped_name(name, args.dataset)
        path = checkpoint_path(label, args.checkpoint_dir)
        if path.is_file():
            targets.append((label, path))
        elif args.model:
            problems.append(f"{label}: no checkpoint at {path}")
        else:
            print(f"{label}: skipped, no checkpoint at {path}", file=sys.stderr)
    for run_id in args.run or ([] if named else [run.run_id for run in list_runs()]):
        try:
            targets.append((run_id, find_run(run_id).checkpoint))
        except KeyError as error:
            problems.append(f"{run_id}: {error.args[0]}")
    return targets, problems


def command_export(args: argparse.Namespace) -> int:
    """Export checkpoints as ONNX files beside them (``mnist_models.export``); a file already exported from the same
    weights is kept."""
    require_extra("export", "digit-lab export --onnx")
    targets, problems = _export_targets(args)
    for problem in problems:
        print(problem, file=sys.stderr)
    failures = len(problems)
    for label, checkpoint in targets:
        try:
            path, exported = refresh_onnx(checkpoint)
        except (DigitLabError, RuntimeError, ValueError, OSError) as error:
            failures += 1
            print(f"{label}: failed: {error}", file=sys.stderr)
            continue
        print(f"{label}: {'exported' if exported else 'up to date'} → {path}", file=sys.stderr)
    return EXIT_FAILED if failures else 0


def command_room(args: argparse.Namespace) -> int:
    """The room's drawings (``store.room_db``): counts, export of the training set, import of labelled pictures.
    SQLAlchemy is imported only here, so the other commands start without it (and run without the extra)."""
    with needs_extra("room", "digit-lab room"):
        from .room import import_pictures
        from .store.room_db import RoomError, open_room

    try:
        store = open_room(args.db)
        if args.action == "stats":
            _print_room_counts(store.where, store.counts())
        elif args.action == "export":
            _export_room(store, args)
        else:
            report = import_pictures(store, args.path, args.session)
            for skipped in report.skipped:
                print(f"skipped {skipped.name}: {skipped.reason}", file=sys.stderr)
            print(f"imported {len(report.added)} picture(s) into {store.where} as session {args.session}; skipped "
                  f"{len(report.skipped)}", file=sys.stderr)
    except RoomError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    return 0


def _print_room_counts(where: str, counts: RoomCounts) -> None:
    print(f"{counts.total} drawing(s) in {where}")
    for heading, tally in (("status", counts.by_status), ("input", counts.by_kind), ("digit", counts.by_label)):
        print(f"by {heading}: " + ", ".join(f"{key} {count}" for key, count in tally.items()))


def _export_room(store: RoomStore, args: argparse.Namespace) -> None:
    """The training set (reviewed drawings, and kept ones with --include-kept) as IDX files or as an NPZ file."""
    from .store.room_db import write_idx, write_npz

    which = "reviewed and kept" if args.include_kept else "reviewed"
    records = store.training_set(reviewed_only=not args.include_kept)
    written = [*write_idx(records, args.idx)] if args.idx else [write_npz(records, args.npz)]
    print(f"exported {len(records)} {which} drawing(s) to {', '.join(map(str, written))}"
          + ("" if args.include_kept else " (--include-kept adds the kept ones)"), file=sys.stderr)


def command_serve(args: argparse.Namespace) -> int:
    """Start the dashboard (``streamlit run app.py`` through dashboard/serve.py) with this command's folders;
    Streamlit's own options follow."""
    app = REPO_ROOT / "app.py"
    if not IN_CHECKOUT:
        print(f"error: the dashboard needs a checkout of digit-lab (no app.py at {app}); the installed package "
              f"holds only the library and the command line", file=sys.stderr)
        return EXIT_USAGE
    require_extra("app", "The dashboard")
    for value, variable in ((args.checkpoint_dir, CHECKPOINT_DIR_ENV), (args.data_dir, DATA_DIR_ENV)):
        if value:
            os.environ[variable] = str(Path(value).resolve())
    command = [sys.executable, "-m", "dashboard.serve", *args.streamlit_options]  # see dashboard/serve.py
    os.execv(sys.executable, command)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="digit-lab", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", help="dataset root holding MNIST/raw (default: $MNIST_DATA_DIR, else ./data)")
    common.add_argument("--checkpoint-dir",
                        help=f"where checkpoints live (default: ${CHECKPOINT_DIR_ENV}, else checkpoints/)")

    train_parser = sub.add_parser("train", parents=[common], help="train models and save checkpoints + results")
    which = train_parser.add_mutually_exclusive_group()
    which.add_argument("--model", action="append", choices=MODEL_NAMES, help="model to train (repeatable)")
    which.add_argument("--all", action="store_true", help="train every registry model with its recipe")
    train_parser.add_argument("--dataset", choices=tuple(DATASETS),
                              help="what to train on (default mnist); a model trained on another dataset is saved "
                                   "as <dataset>-<model>.pt, e.g. fashion-cnn.pt")
    train_parser.add_argument("--recipe", choices=sorted(RECIPES),
                              help="a named training recipe; 'fast' is the short schedule of the speed benchmark")
    train_parser.add_argument("--epochs", type=int)
    train_parser.add_argument("--batch-size", type=int)
    train_parser.add_argument("--lr", type=float, help="learning rate (the peak rate for onecycle)")
    train_parser.add_argument("--optimizer", choices=OPTIMIZERS)
    train_parser.add_argument("--schedule", choices=SCHEDULES)
    train_parser.add_argument("--weight-decay", type=float)
    train_parser.add_argument("--betas", type=float, nargs=2, metavar=("BETA1", "BETA2"),
                              help="adam/adamw betas, held fixed through a onecycle schedule")
    train_parser.add_argument("--label-smoothing", type=float, help="share of each target spread over the others")
    train_parser.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                              help="random rotations, shifts and zoom (never flips)")
    train_parser.add_argument("--augment-strength", type=float)
    train_parser.add_argument("--room-augment", action=argparse.BooleanOptionalAction, default=None,
                              help="also what real input changes: pen width, resolution loss and blur, slant, contrast")
    train_parser.add_argument("--train-subset", type=int, help="train on only this many images (quick runs)")
    train_parser.add_argument("--seed", type=int)
    train_parser.add_argument("--device", help="auto (default), cpu, cuda, mps")
    train_parser.add_argument("--weights", help="MobileNet initialisation: imagenet (default), none, or a file")
    train_parser.add_argument("--arch", action="append", type=_parse_assignment, metavar="KEY=VALUE",
                              help="architecture hyperparameter, e.g. --arch cell=lstm --arch hidden_size=256")
    train_parser.add_argument("--output-dir", help="where to write the checkpoints (default: the checkpoint folder)")
    train_parser.set_defaults(handler=command_train)

    tune_parser = sub.add_parser(
        "tune", parents=[common], help="search a model's hyperparameters with Optuna (validation accuracy only)",
        description="Trials of the model's recipe with the learning rate, batch size, epochs, augmentation strength, "
                    "dropout and width searched (TPE sampler, median pruner on each epoch's validation accuracy), one "
                    "at a time. The study is kept in runs/studies.db (or --storage): running it again adds trials. "
                    "--save-best retrains the best trial on all the training images and saves it as a run with its "
                    "test evaluation. Needs the training lock; Ctrl-C stops the trial in progress, keeping the rest.")
    which = tune_parser.add_mutually_exclusive_group()
    which.add_argument("--model", choices=MODEL_NAMES, help="the model to search (its study is named after it)")
    which.add_argument("--list", action="store_true", help="list the studies in the storage")
    which.add_argument("--show", metavar="NAME", help="print a study's trials and its best")
    tune_parser.add_argument("--trials", type=int, default=TUNE_TRIALS, help=f"trials to add (default {TUNE_TRIALS})")
    tune_parser.add_argument("--timeout", type=float, metavar="S", help="start no trial after this many seconds")
    tune_parser.add_argument("--study", help="the study's name (default: the model's)")
    tune_parser.add_argument("--storage", help="an Optuna storage URL (postgresql://user:pass@host/db for several "
                             "machines), an SQLite file, or a .journal file (default: runs/studies.db; with --workers, "
                             "runs/studies.journal)")
    tune_parser.add_argument("--workers", type=_positive_int, default=1, metavar="N",
                             help="run the trials in N processes at once, sharing the study (default 1)")
    tune_parser.add_argument("--train-subset", type=int, help="trials train on only this many images")
    tune_parser.add_argument("--max-epochs", type=int, help="cap the searched epochs (default: the recipe's)")
    tune_parser.add_argument("--save-best", action="store_true",
                             help="then retrain the best trial on all the training images and save it as a run")
    tune_parser.add_argument("--seed", type=int, default=0, help="the sampler's and the trials' seed")
    tune_parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda, mps")
    tune_parser.set_defaults(handler=command_tune)

    evaluate_parser = sub.add_parser("evaluate", parents=[common], help="evaluate checkpoints on the test set")
    evaluate_parser.add_argument("--model", action="append", choices=MODEL_NAMES)
    evaluate_parser.add_argument("--dataset", choices=tuple(DATASETS),
                                 help="evaluate the models shipped for this dataset (default mnist) on its test split")
    evaluate_parser.add_argument("--json", action="store_true", help="print results as JSON")
    evaluate_parser.add_argument("--no-latency", action="store_true", help="skip the latency measurement")
    evaluate_parser.add_argument("--novelty-only", action="store_true",
                                 help="only calibrate the novelty threshold on the validation digits, keeping the "
                                      "saved test figures and latency")
    evaluate_parser.add_argument("--only", action="append", choices=EVIDENCE_PARTS,
                                 help="redo only this part of the evidence (repeatable), keeping the evaluation and "
                                      "the other parts: robustness curves, calibration (with selective prediction), "
                                      "or the map of the model's features")
    evaluate_parser.add_argument("--no-evidence", action="store_true",
                                 help="the test figures only: no robustness curves, calibration or map")
    evaluate_parser.set_defaults(handler=command_evaluate)

    info_parser = sub.add_parser("info", parents=[common],
                                 help="models, checkpoints, saved runs, interrupted trainings and dataset status")
    info_parser.add_argument("--json", action="store_true")
    info_parser.set_defaults(handler=command_info)

    recover_parser = sub.add_parser(
        "recover", parents=[common], help="complete, resume or delete what interrupted trainings left",
        description="What a training killed outright leaves (its progress file, a run saved without its evaluation, "
                    "a save not renamed into place), in the runs folder and the checkpoint folder. 'list' (the "
                    "default) shows it; 'complete' evaluates the saved weights and saves them as a cancelled run "
                    "(or as the training's own result when every epoch had finished); 'resume' trains the remaining "
                    "epochs; 'delete' removes the files. Needs the training lock: not while something trains.")
    recover_parser.add_argument("action", nargs="?", choices=RECOVER_ACTIONS, default="list")
    recover_parser.add_argument("names", nargs="*", metavar="NAME", help="as listed, e.g. run007-cnn")
    recover_parser.add_argument("--all", action="store_true", help="every listed item (complete or delete)")
    recover_parser.set_defaults(handler=command_recover)

    report_parser = sub.add_parser("report", parents=[common],
                                   help="the results table, or the stakeholder report (--html), from the saved JSON")
    report_parser.add_argument("--update", "--update-readme", action="append", default=[], metavar="FILE",
                               help="rewrite the table between the results markers of this file (repeatable: "
                                    "README.md docs/results.md)")
    report_parser.add_argument("--html", metavar="FILE",
                               help="write the stakeholder report: one self-contained HTML file (prints to PDF)")
    report_parser.add_argument("--title", default=DEFAULT_REPORT_TITLE, help="the report's title (with --html)")
    report_parser.add_argument("--model", action="append", metavar="NAME",
                               help="a model or saved run to include (repeatable; default: all of them)")
    report_parser.set_defaults(handler=command_report)

    export_parser = sub.add_parser(
        "export", parents=[common], help="export checkpoints as ONNX files beside them",
        description="Each registry model's checkpoint and each saved run (or only those named) as an ONNX file beside "
                    "it (checkpoints/cnn.onnx): input 'images' float32 (N, 1, 28, 28) in 0..1, white digit on black, "
                    "the normalisation inside the graph; output 'probabilities' (N, 10). A file already exported from "
                    "the same checkpoint is kept; one from other weights is rebuilt.")
    export_format = export_parser.add_mutually_exclusive_group(required=True)
    export_format.add_argument("--onnx", action="store_true", help="ONNX (opset 18), ONNX Runtime's format")
    export_parser.add_argument("--model", action="append", choices=MODEL_NAMES, help="a registry model (repeatable)")
    export_parser.add_argument("--run", action="append", metavar="RUN_ID",
                               help="a saved run, e.g. run007-cnn (repeatable)")
    export_parser.add_argument("--dataset", choices=tuple(DATASETS), default="mnist",
                               help="whose shipped models to export (default mnist)")
    export_parser.set_defaults(handler=command_export)

    room_parser = sub.add_parser(
        "room", help="the room's drawings: counts, export for training, import of labelled pictures",
        description="The digits visitors confirmed or corrected on the Draw page (see docs/records.md). 'stats' "
                    "counts them; 'export' writes the training set (reviewed drawings; held ones never) as MNIST's IDX "
                    "files or one NPZ file; 'import' keeps pictures sorted into folders named 0 to 9 (a folder or a "
                    "zip) as drawings of kind 'import'.")
    room_database = argparse.ArgumentParser(add_help=False)
    room_database.add_argument("--db", metavar="URL", help=f"the room's database, any SQLAlchemy URL (default: "
                                                           f"${ROOM_DB_ENV}, else room.sqlite in the runs folder)")
    room_actions = room_parser.add_subparsers(dest="action", required=True)
    room_actions.add_parser("stats", parents=[room_database], help="how many drawings, by status, input and digit")
    export_parser = room_actions.add_parser("export", parents=[room_database], help="write the training set")
    export_target = export_parser.add_mutually_exclusive_group(required=True)
    export_target.add_argument("--idx", metavar="FOLDER", help="MNIST's two IDX files, written into FOLDER")
    export_target.add_argument("--npz", metavar="FILE", help="one NPZ file: images, labels, sessions, ids")
    export_parser.add_argument("--include-kept", action="store_true",
                               help="the kept drawings too, not only the reviewed ones")
    import_parser = room_actions.add_parser("import", parents=[room_database],
                                            help="keep labelled pictures (folders 0 to 9, or a zip of them)")
    import_parser.add_argument("path", help="a folder or a zip holding folders named 0 to 9 of pictures")
    import_parser.add_argument("--session", default="import",
                               help="the session the pictures are kept under (default: import); a split by session "
                                    "keeps them on one side")
    room_parser.set_defaults(handler=command_room)

    serve_parser = sub.add_parser("serve", parents=[common], help="start the dashboard (needs a checkout)")
    serve_parser.add_argument("streamlit_options", nargs=argparse.REMAINDER,
                              help="passed to `streamlit run`, e.g. --server.port 8502")
    serve_parser.set_defaults(handler=command_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except TrainingBusy as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BUSY
    except (DatasetMissingError, MissingExtra) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
