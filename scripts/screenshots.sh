#!/usr/bin/env bash
# Refresh the README's screenshots: the browser test saves one per page into docs/screenshots.
set -euo pipefail
cd "$(dirname "$0")/.."
SCREENSHOT_DIR=docs/screenshots .venv/bin/python -m pytest tests/test_browser.py -q "$@"
