#!/usr/bin/env bash
# Set everything up, then start the dashboard (http://localhost:8501). Extra arguments go to `streamlit run`
# (through dashboard/serve.py, which keeps Streamlit out of its legacy pages/ mode; see there).
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh
exec .venv/bin/python -m dashboard.serve "$@"
