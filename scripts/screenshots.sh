#!/usr/bin/env bash
# Refresh the README's screenshots: the browser tests save one per page (and the report's first page) into
# docs/screenshots.
set -euo pipefail
cd "$(dirname "$0")/.."
SCREENSHOT_DIR=docs/screenshots .venv/bin/python -m pytest tests/test_browser.py -q "$@"
