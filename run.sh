#!/usr/bin/env bash
# Set everything up, then start the dashboard (http://localhost:8501). Extra arguments go to `streamlit run`.
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh
exec .venv/bin/streamlit run app.py "$@"
