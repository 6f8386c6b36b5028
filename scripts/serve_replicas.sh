#!/usr/bin/env bash
# Two dashboard processes (replicas) behind a local nginx (deploy/nginx.conf) on http://127.0.0.1:8500, each visitor
# kept on one. Both read the same checkpoints/ and runs/ and take the same machine-wide training lock; replica 1 runs
# the training worker, replica 2's Train page links there (DIGIT_LAB_TRAINING, dashboard/replica.py). nginx runs as
# the current user from a temporary folder, not as a system service. Ctrl-C (or either process ending) stops all.
#   scripts/serve_replicas.sh [streamlit run options for both replicas]
#   PORT=8500 REPLICA_PORTS="8501 8502" NO_SETUP=1 (skip scripts/setup.sh) change the defaults.
set -euo pipefail
cd "$(dirname "$0")/.."

port=${PORT:-8500}
read -r port1 port2 <<< "${REPLICA_PORTS:-8501 8502}"
nginx=$(command -v nginx || echo /usr/sbin/nginx)
if [[ ! -x $nginx ]]; then
  echo "nginx is missing: apt-get install nginx-light (scripts/setup.sh --dev does it where apt is available)" >&2
  exit 69
fi
[[ -n "${NO_SETUP:-}" ]] || scripts/setup.sh

prefix=$(mktemp -d -t digit-lab-proxy-XXXXXX)
pids=()
stop() {
  trap - INT TERM EXIT
  kill "${pids[@]}" 2>/dev/null || true
  wait || true
  rm -rf "$prefix"
}
trap stop INT TERM EXIT

sed -e "s|@PREFIX@|$prefix|g" -e "s|@PORT@|$port|g" -e "s|@PORT1@|$port1|g" -e "s|@PORT2@|$port2|g" \
  deploy/nginx.conf > "$prefix/nginx.conf"
# One cookie secret for both: Streamlit signs its XSRF cookie with it, so an upload still works on the other replica
# after the proxy moved a visitor there.
export STREAMLIT_SERVER_COOKIE_SECRET
STREAMLIT_SERVER_COOKIE_SECRET=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
serve=(.venv/bin/python -m dashboard.serve --server.headless true --server.address 127.0.0.1
       --browser.gatherUsageStats false)
DIGIT_LAB_REPLICA=1 DIGIT_LAB_TRAINING=on "${serve[@]}" --server.port "$port1" "$@" &
pids+=($!)
DIGIT_LAB_REPLICA=2 DIGIT_LAB_TRAINING=/replica/1/train "${serve[@]}" --server.port "$port2" "$@" &
pids+=($!)
"$nginx" -p "$prefix" -c "$prefix/nginx.conf" -e "$prefix/error.log" &
pids+=($!)
echo "digit-lab: http://127.0.0.1:$port (replica 1 on :$port1 trains, replica 2 on :$port2; Ctrl-C stops all)"
set +e
wait -n
status=$?
echo "digit-lab: a process of the set ended (exit $status); stopping the others" >&2
exit "$status"
