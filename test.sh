#!/usr/bin/env bash
# ./test.sh          set everything up (test tools, Chromium and nginx included), run the checks, then the whole suite
# ./test.sh --quick  the same checks, then the quick tier: the tests that need no browser, no server and no training
#                    beyond a few batches (pytest -m "not slow and not browser"), spread over the cores
# The checks: ruff (lint), lint-imports (the layer contracts in pyproject.toml) and, beside the tests, pyright (types
# of mnist_models/ and dashboard/); the docs site builds with `mkdocs build --strict` inside the suite
# (tests/test_docs.py). Other arguments go to pytest. Tests that need the real MNIST run when MNIST_DATA_DIR (or
# ./data) holds it, and skip with a reason otherwise.
set -euo pipefail
cd "$(dirname "$0")"
quick=false
if [[ "${1:-}" == "--quick" ]]; then
  quick=true
  shift
fi
scripts/setup.sh --dev
.venv/bin/ruff check .
.venv/bin/lint-imports
# pyright runs beside the tests (40 s of one core, which would otherwise come before them); its verdict comes after.
types_log=$(mktemp)
trap 'rm -f "$types_log"' EXIT
.venv/bin/pyright >"$types_log" 2>&1 &
types=$!
status=0
if $quick; then
  .venv/bin/python -m pytest -m "not slow and not browser" -n auto --dist loadfile "$@" || status=$?
else
  # One worker more than the cores: the slow tests spend much of their time waiting on servers, browsers and
  # training processes (each process runs one torch thread, see tests/conftest.py). Modules are handed out as
  # pytest-xdist orders them: sending the slowest first (tried) ran them all at once and took 2.5 min longer.
  .venv/bin/python -m pytest -n "$(( $(nproc) + 1 ))" --dist loadfile --durations=20 "$@" \
    || status=$?  # and the 20 slowest tests
fi
if wait "$types"; then
  tail -n 1 "$types_log"
else
  cat "$types_log"
  echo "pyright: type errors (above)" >&2
  status=1
fi
exit "$status"
