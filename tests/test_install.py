"""The library installs alone: `pip install .` (uv, as the set-up uses) into a fresh environment brings only its own
dependencies; its modules import and its commands run there, outside the checkout, and a command that needs an
optional part names the extra to install."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from mnist_models import MODEL_NAMES
from mnist_models.extras import EXTRAS
from mnist_models.paths import CHECKPOINT_DIR, REPO_ROOT
from tests.conftest import write_idx_dataset

pytestmark = pytest.mark.slow
UV = REPO_ROOT / ".venv" / "bin" / "uv"
APP_ONLY = ("streamlit", "plotly", "pandas", "optuna", "captum", "umap", "streamlit_drawable_canvas", "onnx",
            "onnxruntime")

# Every module of the library imported in the fresh environment: those that fail may fail only for want of an extra.
IMPORT_EVERY_MODULE = """
import importlib, json, pkgutil, mnist_models
from mnist_models.extras import MissingExtra
failed = {}
for module in pkgutil.walk_packages(mnist_models.__path__, 'mnist_models.'):
    if module.name.endswith('__main__'):
        continue
    try:
        importlib.import_module(module.name)
    except MissingExtra as error:
        failed[module.name] = str(error)
    except ModuleNotFoundError as error:
        failed[module.name] = error.name
print(json.dumps(failed))
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A fresh environment with `pip install .` of a copy of the sources (no extras); returns its bin folder."""
    if not UV.is_file():
        pytest.skip("uv is not in .venv (scripts/setup.sh installs it)")
    root = tmp_path_factory.mktemp("install")
    source = root / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO_ROOT / name, source)
    for package in ("mnist_models", "dashboard"):
        shutil.copytree(REPO_ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    environment = root / "env"
    subprocess.run([UV, "venv", "-q", "--python", sys.executable, environment], check=True, timeout=120)
    subprocess.run([UV, "pip", "install", "-q", "--python", environment / "bin" / "python", source], check=True,
                   timeout=900)
    return environment / "bin"


def run(bin_dir, *arguments, cwd):
    return subprocess.run([bin_dir / arguments[0], *arguments[1:]], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env={"PATH": str(bin_dir), "HOME": str(cwd)})


def test_only_the_library_s_dependencies_are_installed_and_every_module_imports_or_names_its_extra(installed,
                                                                                                    tmp_path):
    found = run(installed, "python", "-c", "import importlib.util as u, json; print(json.dumps({name: u.find_spec("
                "name) is not None for name in ('torch', 'torchvision', 'sklearn', 'scipy', 'PIL', *"
                f"{APP_ONLY!r})}}))", cwd=tmp_path)
    assert found.returncode == 0, found.stderr
    present = json.loads(found.stdout)
    assert [name for name in APP_ONLY if present[name]] == [] and all(present[name] for name in ("torch", "scipy"))

    imported = run(installed, "python", "-c", IMPORT_EVERY_MODULE, cwd=tmp_path)
    assert imported.returncode == 0, imported.stderr
    failed = json.loads(imported.stdout)
    optional = {module for modules in EXTRAS.values() for module in modules}
    assert all(reason in optional or "pip install 'digit-lab[" in reason for reason in failed.values()), failed
    assert not {"mnist_models.cli", "mnist_models.training.pipeline", "mnist_models.evaluation",
                "mnist_models.serving.catalog", "mnist_models.stakeholder_report"} & set(failed)


def test_the_commands_run_outside_the_checkout_and_the_app_s_say_what_they_need(installed, tmp_path):
    for command in ("train", "evaluate"):
        assert run(installed, "digit-lab", command, "--help", cwd=tmp_path).returncode == 0
    info = run(installed, "digit-lab", "info", "--json", "--checkpoint-dir", str(CHECKPOINT_DIR), cwd=tmp_path)
    assert info.returncode == 0, info.stderr
    rows = json.loads(info.stdout)["models"]
    assert [row["name"] for row in rows] == list(MODEL_NAMES) and all(row["status"].startswith("trained ")
                                                                     for row in rows)
    assert f"Saved runs (the Train page's) in {tmp_path / 'runs'}: none" in run(installed, "digit-lab", "info",
                                                                               cwd=tmp_path).stdout

    tune = run(installed, "digit-lab", "tune", "--model", "cnn", cwd=tmp_path)
    assert tune.returncode == 2 and "pip install 'digit-lab[tune]'" in tune.stderr
    export = run(installed, "digit-lab", "export", "--onnx", cwd=tmp_path)
    assert export.returncode == 2 and "pip install 'digit-lab[export]'" in export.stderr
    report = run(installed, "digit-lab", "report", "--html", "report.html", cwd=tmp_path)
    assert report.returncode == 2 and "pip install 'digit-lab[app]'" in report.stderr
    serve = run(installed, "digit-lab", "serve", cwd=tmp_path)
    assert serve.returncode == 2 and "needs a checkout of digit-lab" in serve.stderr


def test_evaluate_saves_the_test_figures_and_names_the_extra_the_evidence_needs(installed, tmp_path):
    checkpoints = tmp_path / "checkpoints"
    checkpoints.mkdir()
    shutil.copy(CHECKPOINT_DIR / "mlp.pt", checkpoints)
    data = write_idx_dataset(tmp_path / "data", train_count=60, test_count=30)
    evaluated = run(installed, "digit-lab", "evaluate", "--model", "mlp", "--no-latency", "--data-dir", str(data),
                    "--checkpoint-dir", str(checkpoints), cwd=tmp_path)
    assert evaluated.returncode == 1 and "pip install 'digit-lab[evidence]'" in evaluated.stderr
    assert json.loads((checkpoints / "mlp.metrics.json").read_text())["metrics"]["count"] == 30
