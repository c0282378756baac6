#!/usr/bin/env bash
# Install a single-node Slurm (Debian's slurmctld, slurmd, slurm-client) and munge.
# Needs root and apt-get; exits 0 with a message otherwise (the cluster tests then skip,
# except under CI=true, where they fail).
set -uo pipefail
if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null \
   && command -v munged >/dev/null; then
  exit 0
fi
if [[ "$(id -u)" != "0" ]] || ! command -v apt-get >/dev/null; then
  echo "slurm/install: not root or no apt-get; install slurmctld slurmd slurm-client munge yourself" >&2
  exit 0
fi
echo "slurm/install: apt-get install slurmctld slurmd slurm-client munge"
apt-get update -qq >/dev/null 2>&1 || true
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  slurmctld slurmd slurm-client munge >/dev/null 2>&1 || { echo "slurm/install: apt-get install failed" >&2; exit 1; }
