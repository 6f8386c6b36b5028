"""The README stays a short front door whose links work, and the documentation site under docs/ builds strictly."""

import importlib.util
import os
import re
import subprocess
import sys

import pytest

from mnist_models.paths import REPO_ROOT
from mnist_models.reporting import RESULTS_END, RESULTS_START, leaderboard_rows, render_results_markdown

README = REPO_ROOT / "README.md"
MAX_README_LINES = 250
LINK = re.compile(r"\]\(([^)\s]+)\)|\bsrc=\"([^\"]+)\"")


def _slug(heading: str) -> str:
    """A heading's anchor as GitHub and MkDocs make it: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", path.read_text(), flags=re.S | re.M)
    return {_slug(match) for match in re.findall(r"^#+ (.+)$", text, flags=re.M)}


def test_the_site_builds_with_mkdocs_strict(tmp_path):
    for module in ("mkdocs", "material"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed here (requirements-dev.txt pins it; ./test.sh installs it)")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(REPO_ROOT / "mkdocs.yml"),
         "--site-dir", str(tmp_path / "site")], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert result.returncode == 0, result.stderr[-4000:]
    assert (tmp_path / "site" / "index.html").is_file() and (tmp_path / "site" / "layout" / "index.html").is_file()


def test_the_readme_is_short_and_every_relative_link_in_it_points_at_a_file_and_heading_that_exist():
    lines = README.read_text().splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines; move detail into docs/"
    links = [target for match in LINK.finditer(README.read_text()) for target in match.groups() if target]
    relative = [target for target in links if not re.match(r"[a-z][a-z0-9+.-]*:", target)]
    assert any(target.startswith("docs/") for target in relative), "the README links into the docs"
    broken = []
    for target in relative:
        path, _, anchor = target.partition("#")
        destination = README if not path else REPO_ROOT / path
        if not destination.exists():
            broken.append(f"{target}: no such file")
        elif anchor and destination.suffix == ".md" and anchor not in _anchors(destination):
            broken.append(f"{target}: no heading with that anchor")
    assert broken == []


def test_every_results_table_holds_the_saved_evaluations():
    """The README's results table and its copy in docs/ are what `digit-lab report` renders now."""
    table = f"{RESULTS_START}\n{render_results_markdown(leaderboard_rows(REPO_ROOT / 'checkpoints'))}\n{RESULTS_END}"
    holders = [path for path in [README, *sorted((REPO_ROOT / "docs").rglob("*.md"))]
               if RESULTS_START in path.read_text()]
    assert README in holders
    stale = [str(path.relative_to(REPO_ROOT)) for path in holders if table not in path.read_text()]
    assert stale == [], f"run `digit-lab report --update FILE` for each of {stale}"
