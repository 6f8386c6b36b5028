"""The set-up applies patches/*.patch to the installed packages: the canvas then sends a stroke at mouse-up."""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path

import pytest

from mnist_models.paths import REPO_ROOT

PATCHES = sorted((REPO_ROOT / "patches").glob("*.patch"))


@pytest.mark.parametrize("fix", PATCHES, ids=[fix.name for fix in PATCHES])
def test_every_patch_is_applied_to_the_installed_package(fix):
    site = Path(importlib.util.find_spec("streamlit_drawable_canvas").origin).parent.parent
    applied = subprocess.run(["patch", "--dry-run", "--reverse", "--force", "-p1", "-d", str(site)],
                             stdin=fix.open(), capture_output=True, text=True)
    assert applied.returncode == 0, f"{fix.name} is not applied: run scripts/setup.sh ({applied.stdout[-500:]})"
