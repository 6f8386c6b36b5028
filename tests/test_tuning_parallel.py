"""Parallel hyperparameter search: two worker processes share one study (a journal file, or a PostgreSQL server when
one can be started here) without running a trial twice, the best is the best of both, a resume adds to the same study,
and a stop ends every worker."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from mnist_models import tuning
from mnist_models.cli import main
from mnist_models.devices import THREADS_ENV
from mnist_models.parallel_tuning import check_shared, shares
from mnist_models.paths import REPO_ROOT
from mnist_models.training.locking import acquire_training_lock

pytestmark = pytest.mark.slow  # worker processes share one Optuna study

SUBSET = ["--train-subset", "500", "--max-epochs", "1", "--device", "cpu"]


@pytest.fixture
def two_cores(monkeypatch):
    """The training threads to share out, whatever this machine has: each of two workers then gets one."""
    monkeypatch.setenv(THREADS_ENV, "2")


def journal_study(runs_dir: Path, name: str = "mlp") -> optuna.Study:
    return tuning.load_study(name, tuning.storage_url(runs_dir / tuning.JOURNAL_FILE))


def assert_shared_fairly(trials: list[optuna.trial.FrozenTrial], new: int) -> None:
    """The study's trials numbered 0, 1, … with no point tried twice; its ``new`` last ones run by two worker
    processes (not this one) with a thread each."""
    assert sorted(trial.number for trial in trials) == list(range(len(trials)))
    assert all(trial.state == TrialState.COMPLETE for trial in trials)  # one epoch: never pruned
    assert len({tuple(sorted(trial.params.items())) for trial in trials}) == len(trials)
    runners = [trial.user_attrs[tuning.RUNNER_ATTR] for trial in trials[-new:]]
    assert len({runner["pid"] for runner in runners}) == 2 and os.getpid() not in {runner["pid"] for runner in runners}
    assert {runner["threads"] for runner in runners} == {1}


def test_trials_are_shared_out_with_the_total_kept():
    assert shares(5, 2) == [3, 2] and shares(4, 2) == [2, 2] and shares(1, 3) == [1] and shares(None, 2) == [None] * 2


def test_several_workers_use_the_journal_file_by_default_and_refuse_sqlite(runs_dir, capsys):
    assert tuning.storage_url(workers=2) == f"journal:///{runs_dir / 'studies.journal'}"
    assert tuning.storage_url("elsewhere/s.journal") == "journal:///elsewhere/s.journal"
    assert tuning.storage_url(workers=1) == f"sqlite:///{runs_dir / 'studies.db'}"
    check_shared(tuning.storage_url(workers=2))
    check_shared("postgresql://user@host/db")
    with pytest.raises(ValueError, match="not SQLite"):
        check_shared(tuning.storage_url())
    assert main(["tune", "--model", "mlp", "--workers", "2", "--storage", str(runs_dir / "s.db")]) == 2
    assert "not SQLite" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["tune", "--model", "mlp", "--workers", "0"])


def test_a_database_without_its_driver_is_a_clear_error():
    with pytest.raises(ValueError, match="'MySQLdb' is not installed"):
        tuning.open_study("mlp", storage="mysql://user@localhost/studies")


def test_the_parent_takes_the_training_lock_for_its_workers(tiny_dataset):
    with acquire_training_lock("another training"):
        assert main(["tune", "--model", "mlp", "--workers", "2", "--data-dir", str(tiny_dataset)]) == 75


def test_a_failing_worker_fails_the_command_with_its_reason(tiny_dataset, capfd):
    assert main(["tune", "--model", "mlp", "--trials", "3", "--workers", "2", "--device", "nowhere",
                 "--data-dir", str(tiny_dataset)]) == 1
    err = capfd.readouterr().err
    assert "nowhere" in err and "worker 0 failed (exit code 1); worker 1 failed (exit code 1)" in err


def test_two_workers_share_one_study_and_a_resume_adds_to_it(mnist_root, runs_dir, two_cores, capfd):
    assert main(["tune", "--model", "mlp", "--trials", "4", "--workers", "2", *SUBSET]) == 0
    err = capfd.readouterr().err  # the workers' lines too: they write to the file descriptor
    assert "4 more trial(s) of mlp after 0" in err and "worker 0: trial" in err and "worker 1: trial" in err
    study = journal_study(runs_dir)
    first = study.trials
    assert len(first) == 4
    assert_shared_fairly(first, 4)
    assert study.best_value == max(trial.value for trial in first)

    assert main(["tune", "--model", "mlp", "--trials", "2", "--workers", "2", *SUBSET]) == 0
    resumed = journal_study(runs_dir).trials
    assert [(trial.number, trial.params, trial.value) for trial in resumed[:4]] == [
        (trial.number, trial.params, trial.value) for trial in first]
    assert len(resumed) == 6
    assert_shared_fairly(resumed, 2)
    assert main(["tune", "--show", "mlp", "--workers", "2"]) == 0  # the same default storage as the run
    assert "6 trials" in capfd.readouterr().out


def test_sigterm_ends_every_worker_and_the_study_keeps_its_trials(mnist_root, runs_dir, two_cores):
    command = [sys.executable, "-m", "mnist_models", "tune", "--model", "mlp", "--trials", "40", "--workers", "2",
               *SUBSET]
    tune = subprocess.Popen(command, cwd=REPO_ROOT, stderr=subprocess.PIPE, text=True)
    lines = []
    for line in tune.stderr:  # stop once each worker has finished a trial
        lines.append(line)
        if {"worker 0: trial", "worker 1: trial"} <= {line[:15] for line in lines}:
            break
    tune.send_signal(signal.SIGTERM)
    rest = tune.communicate(timeout=60)[1]
    assert tune.returncode == 130, "".join(lines) + rest
    assert "stopped by SIGTERM: the study keeps its" in rest
    trials = journal_study(runs_dir).trials
    assert 2 <= len(trials) < 40 and TrialState.RUNNING not in {trial.state for trial in trials}
    for pid in {trial.user_attrs[tuning.RUNNER_ATTR]["pid"] for trial in trials}:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # no worker outlives the command


@pytest.fixture
def postgres_url():
    """A throwaway PostgreSQL server on a unix socket in a temporary folder (as the postgres user when this runs as
    root, which PostgreSQL refuses); skipped where the server or the driver is missing."""
    pytest.importorskip("psycopg", reason="psycopg[binary] (requirements.txt), SQLAlchemy's PostgreSQL driver, is "
                                          "not installed")
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("PostgreSQL's initdb and pg_ctl are not on the PATH (apt-get install postgresql)")
    folder = Path(tempfile.mkdtemp(prefix="digit-lab-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no postgres user to run the server as")
        os.chown(folder, owner.pw_uid, owner.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data = folder / "data"
    try:
        subprocess.run([*as_user, initdb, "-D", str(data), "-U", "digitlab", "--auth=trust"], check=True,
                       capture_output=True, timeout=120)
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-o", f"-k {folder} -c listen_addresses=''",
                        "-l", str(folder / "server.log"), "-w", "start"], check=True, capture_output=True,
                       timeout=60)
        yield f"postgresql://digitlab@/postgres?host={folder}"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True,
                       timeout=60)
        shutil.rmtree(folder, ignore_errors=True)


def test_two_workers_share_a_study_in_postgresql_with_heartbeats(mnist_root, postgres_url, two_cores):
    storage = tuning._open_storage(postgres_url)
    assert storage.get_heartbeat_interval() == tuning.HEARTBEAT_S  # a trial of a dead machine is failed later
    assert main(["tune", "--model", "mlp", "--study", "shared", "--trials", "4", "--workers", "2",
                 "--storage", postgres_url, *SUBSET]) == 0
    study = tuning.load_study("shared", postgres_url)
    assert len(study.trials) == 4
    assert_shared_fairly(study.trials, 4)
    assert study.best_value == max(trial.value for trial in study.trials)
