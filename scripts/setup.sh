#!/usr/bin/env bash
# Set up .venv with the pinned stack; idempotent and quick when nothing changed.
#   scripts/setup.sh        runtime (dashboard, the `digit-lab` command)
#   scripts/setup.sh --dev  + test tools (pytest, Playwright, ruff), and Debian's Chromium and nginx for the browser tests
# torch and torchvision are installed as the registry's matching pair with uv, which ignores pip's configuration:
# a pip config that adds a folder with a CPU-only torch wheel would otherwise pair it with an incompatible torchvision.
set -euo pipefail
cd "$(dirname "$0")/.."

requirements=requirements.txt
[[ "${1:-}" == "--dev" ]] && requirements=requirements-dev.txt
python=${PYTHON:-python3}
stamp=.venv/.installed-$(basename "$requirements" .txt)
wanted=$(cat requirements*.txt pyproject.toml | sha256sum | cut -c1-16)

if [[ ! -x .venv/bin/python ]]; then
  "$python" -m venv .venv
fi
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$wanted" ]]; then
  if [[ ! -x .venv/bin/uv ]]; then
    PIP_CONFIG_FILE=/dev/null .venv/bin/python -m pip install --quiet --disable-pip-version-check "uv==0.13.8"
  fi
  .venv/bin/uv pip install --quiet --python .venv/bin/python -r "$requirements"
  # The project itself, editable and without touching the pins above: puts the `digit-lab` command in .venv/bin.
  .venv/bin/uv pip install --quiet --python .venv/bin/python --no-deps -e .
  echo "$wanted" > "$stamp"
fi

# The canvas component's fix for a 200 ms wait after every stroke (see the patch's header); skipped once applied.
site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
if command -v patch >/dev/null; then
  for fix in patches/*.patch; do
    if ! patch --dry-run --reverse --force --silent -p1 -d "$site" < "$fix" >/dev/null 2>&1; then
      patch --forward --silent -p1 -d "$site" < "$fix"
    fi
  done
else
  echo "note: 'patch' is missing (apt-get install patch); the canvas keeps its 200 ms wait after each stroke" >&2
fi

if [[ "${1:-}" == "--dev" && ! -x /usr/bin/chromium ]]; then
  if command -v apt-get >/dev/null && [[ $(id -u) == 0 ]]; then
    apt-get install -y -q chromium >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }
  else
    echo "note: /usr/bin/chromium is missing (apt-get install chromium); the browser test will be skipped" >&2
  fi
fi

# nginx for the two-replica set-up (scripts/serve_replicas.sh) and its test; run as the current user, not as a service.
if [[ "${1:-}" == "--dev" ]] && ! command -v nginx >/dev/null && [[ ! -x /usr/sbin/nginx ]]; then
  if command -v apt-get >/dev/null && [[ $(id -u) == 0 ]]; then
    apt-get install -y -q nginx-light >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null && apt-get install -y -q nginx-light >/dev/null; } \
      || echo "note: could not install nginx-light; the proxy test will be skipped" >&2
  else
    echo "note: nginx is missing (apt-get install nginx-light); the proxy test will be skipped" >&2
  fi
fi

# Fashion-MNIST, the second dataset: a Debian package (gzipped IDX files under /usr/share/datasets/fashion-mnist).
if [[ ! -d /usr/share/datasets/fashion-mnist ]]; then
  if command -v apt-get >/dev/null && [[ $(id -u) == 0 ]]; then
    apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null && apt-get install -y -q dataset-fashion-mnist >/dev/null; } \
      || echo "note: could not install dataset-fashion-mnist; Fashion-MNIST tests will be skipped" >&2
  else
    echo "note: Fashion-MNIST is missing (apt-get install dataset-fashion-mnist, or its IDX files in" \
         "<data root>/FashionMNIST/raw); its tests will be skipped" >&2
  fi
fi
