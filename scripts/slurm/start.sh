#!/usr/bin/env bash
# Start a single-node Slurm on localhost: munged, slurmctld, slurmd.
#
#   bash scripts/slurm/start.sh            # prints `export SLURM_CONF=...`
#   SHIKOMI_SLURM_DIR=/some/dir bash scripts/slurm/start.sh
#
# Everything lives under $SHIKOMI_SLURM_DIR (default /tmp/shikomi-slurm): slurm.conf,
# state, spool, logs and the pid files. Daemons this script starts are listed in
# $DIR/started, and scripts/slurm/stop.sh stops exactly those, by PID. A cluster that
# is already up (same folder) is reused.
set -euo pipefail
DIR="${SHIKOMI_SLURM_DIR:-/tmp/shikomi-slurm}"
CONF="$DIR/slurm.conf"
PARTITION="${SHIKOMI_SLURM_PARTITION:-debug}"
mkdir -p "$DIR/state" "$DIR/spool" "$DIR/log"
touch "$DIR/started"

alive() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

for exe in munged slurmctld slurmd sbatch; do
  command -v "$exe" >/dev/null || { echo "slurm/start: $exe not found (run scripts/slurm/install.sh as root)" >&2; exit 3; }
done
[[ "$(id -u)" == "0" ]] || { echo "slurm/start: must run as root (slurmd runs jobs as their users)" >&2; exit 3; }

# --- munge: the authentication daemon, run as the munge user --------------------
if ! munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
  install -d -o munge -g munge -m 0755 /run/munge
  install -d -o munge -g munge -m 0700 /var/log/munge /var/lib/munge 2>/dev/null || true
  if [[ ! -s /etc/munge/munge.key ]]; then
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
    chown munge:munge /etc/munge/munge.key; chmod 0400 /etc/munge/munge.key
  fi
  runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid --force
  for _ in $(seq 50); do munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
  grep -qx /run/munge/munged.pid "$DIR/started" || echo /run/munge/munged.pid >> "$DIR/started"
fi

# --- slurm.conf ----------------------------------------------------------------
CPUS="${SHIKOMI_SLURM_CPUS:-$(nproc)}"
MEM_MB=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 * 8 / 10 ))
cat > "$CONF.tmp" <<CONF_EOF
# single-node Slurm for shikomi's cluster tests (scripts/slurm/start.sh)
ClusterName=shikomi
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# a requeued job (the trainer's checkpoint-and-requeue) may start again after 30 s, not 120 s
AuthInfo=cred_expire=30
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
ReturnToService=2
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmdSpoolDir=$DIR/spool
StateSaveLocation=$DIR/state
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,bf_interval=1,kill_invalid_depend
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
InactiveLimit=0
KillWait=5
MinJobAge=600
Waittime=0
JobRequeue=1
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=$PARTITION Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF_EOF
mv "$CONF.tmp" "$CONF"
export SLURM_CONF="$CONF"

# --- slurmctld, slurmd ---------------------------------------------------------
if ! alive "$DIR/slurmctld.pid"; then
  slurmctld -f "$CONF"
  grep -qx "$DIR/slurmctld.pid" "$DIR/started" || echo "$DIR/slurmctld.pid" >> "$DIR/started"
fi
if ! alive "$DIR/slurmd.pid"; then
  slurmd -f "$CONF" -N localhost
  grep -qx "$DIR/slurmd.pid" "$DIR/started" || echo "$DIR/slurmd.pid" >> "$DIR/started"
fi

# wait for the node to be schedulable
for _ in $(seq 60); do
  state=$(sinfo -h -n localhost -o %T 2>/dev/null | head -n1 || true)
  case "$state" in
    idle|mixed|allocated|completing) echo "export SLURM_CONF=$CONF"; exit 0 ;;
    down*|drain*) scontrol update nodename=localhost state=resume >/dev/null 2>&1 || true ;;
  esac
  sleep 0.5
done
echo "slurm/start: the node did not come up; see $DIR/log/slurmctld.log and $DIR/log/slurmd.log" >&2
exit 1
