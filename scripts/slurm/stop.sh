#!/usr/bin/env bash
# Stop the daemons scripts/slurm/start.sh started (listed in $DIR/started), by PID.
set -uo pipefail
DIR="${SHIKOMI_SLURM_DIR:-/tmp/shikomi-slurm}"
[[ -f "$DIR/started" ]] || exit 0
# slurmd and slurmctld first, munged last (reverse order of start)
tac "$DIR/started" | while read -r pidfile; do
  [[ -n "$pidfile" && -f "$pidfile" ]] || continue
  pid=$(cat "$pidfile")
  kill -0 "$pid" 2>/dev/null || continue
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
done
rm -f "$DIR/started"
