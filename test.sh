#!/usr/bin/env bash
# Set everything up (test tools and Chromium included), lint, then run the whole test suite. Extra arguments go to
# pytest. Tests that need the real MNIST run when MNIST_DATA_DIR (or ./data) holds it, and skip with a reason otherwise.
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh --dev
.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"
