#!/usr/bin/env bash
# Start a real single-node SLURM cluster on this machine (controller and compute node on loopback) for the
# SLURM tests: munge authentication, slurmctld, slurmd, one partition "debug". Idempotent; needs root.
#   scripts/slurm_local_cluster.sh          # install (Debian packages slurm-wlm, munge) if missing, then start
#   scripts/slurm_local_cluster.sh stop     # stops only the daemons this script started (their pid files)
set -euo pipefail

# pid files of the daemons this script started; `stop` signals those pids only (and only while each pid still runs
# the daemon it names), never other users' daemons on a shared node
state=${SECONDORDER_SLURM_STATE:-/run/secondorder-slurm}

if [ "${1:-start}" = "stop" ]; then
  for name in slurmd slurmctld munged; do
    pidfile="$state/$name.pid"
    [ -s "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ]; then kill "$pid" || true; fi
    rm -f "$pidfile"
  done
  exit 0
fi
mkdir -p "$state"

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >/dev/null
fi

# munge: a key, its directories, the daemon (as the munge user)
mkdir -p /etc/munge /run/munge /var/lib/munge /var/log/munge
[ -s /etc/munge/munge.key ] || dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge
chmod 700 /etc/munge; chmod 400 /etc/munge/munge.key; chmod 755 /run/munge
if ! pgrep -x munged >/dev/null; then
  runuser -u munge -- munged --force
  for _ in $(seq 50); do [ -s /run/munge/munged.pid ] && break; sleep 0.1; done
  cp /run/munge/munged.pid "$state/munged.pid" 2>/dev/null || pgrep -n -x munged > "$state/munged.pid" || true
fi

# slurm.conf: this host is controller and the only node; no cgroups, no accounting
host=$(hostname -s)
cpus=$(nproc)
memory=$(awk '/MemTotal/ {print int($2 / 1024 * 0.8)}' /proc/meminfo)
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
cat > /etc/slurm/slurm.conf <<CONF
ClusterName=local
SlurmctldHost=${host}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=${state}/slurmctld.pid
SlurmdPidFile=${state}/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
KillWait=30
NodeName=${host} CPUs=${cpus} RealMemory=${memory} State=UNKNOWN
PartitionName=debug Nodes=${host} Default=YES MaxTime=INFINITE State=UP
CONF
# slurmd initialises a cgroup plugin even with proctrack/linuxproc: point it at this machine's hierarchy.
if [ "$(stat -fc %T /sys/fs/cgroup 2>/dev/null)" = "cgroup2fs" ]; then plugin=cgroup/v2; else plugin=cgroup/v1; fi
printf 'CgroupPlugin=%s\nCgroupMountpoint=/sys/fs/cgroup\nIgnoreSystemd=yes\nCgroupAutomount=no\n' "$plugin" \
  > /etc/slurm/cgroup.conf

pgrep -x slurmctld >/dev/null || slurmctld
pgrep -x slurmd >/dev/null || slurmd
for _ in $(seq 60); do
  if sinfo -h -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
    echo "slurm is up: $(sinfo -h -o '%P %D %T %N')"
    exit 0
  fi
  scontrol update nodename="${host}" state=idle >/dev/null 2>&1 || true
  sleep 1
done
echo "slurm did not come up; see /var/log/slurm/" >&2
exit 1
