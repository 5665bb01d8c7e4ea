#!/usr/bin/env bash
# A real one-node Slurm on this machine, for the project's Slurm tests and for trying
# `--executor slurm` by hand. Debian/Ubuntu, run as root; no systemd or cgroups needed.
#
#   tests/slurm/local_slurm.sh start    # install (first time), start, wait until usable
#   tests/slurm/local_slurm.sh status   # which daemons run (exit 0: all of them)
#   tests/slurm/local_slurm.sh stop     # cancel all jobs, stop the daemons (state is kept)
#   tests/slurm/local_slurm.sh purge    # stop, then delete the state folder
#
# What `start` runs: munged, a private MariaDB (127.0.0.1 only) holding the accounting
# database, slurmdbd, slurmctld and slurmd, on one node with this machine's CPUs and memory
# and two fake GPUs (gres gpu:2, dummy character devices: jobs get CUDA_VISIBLE_DEVICES, but
# torch sees no CUDA device). It is idempotent: what already runs is left running.
#
# All state (configuration, munge key, database, Slurm's spool, logs, fake devices) is under
# one folder, $REPROLIB_SLURM_DIR (default /tmp/reprolib-slurm): `stop` + `start` resumes it,
# `purge` (or deleting the folder while stopped) starts from scratch (job ids restart at 1).
# Pid files are under $REPROLIB_SLURM_RUN (default /run/slurm); `stop` goes by them only.
# Outside both, `start` may install packages and points /etc/slurm/slurm.conf (only when
# that path is free or already such a link) at the generated configuration, so the Slurm
# commands work without SLURM_CONF; otherwise export the SLURM_CONF that `start` prints.
#
# Settings (environment):
#   REPROLIB_SLURM_DIR             state folder                           [/tmp/reprolib-slurm]
#   REPROLIB_SLURM_RUN             pid files                              [/run/slurm]
#   REPROLIB_SLURM_MAX_ARRAY_SIZE  slurm.conf MaxArraySize                [1001, Slurm's default]
#   REPROLIB_SLURM_PARTITION       the one (default) partition's name     [main]
#   REPROLIB_SLURM_MAX_TIME        its MaxTime, minutes                   [480]
#   REPROLIB_SLURM_DB_PORT         the private MariaDB's TCP port         [3316]
#   REPROLIB_SLURM_ENFORCE_PART_LIMITS  slurm.conf EnforcePartLimits      [NO, Slurm's default:
#                                  a job above MaxTime is accepted and pends for ever; ALL: refused]
#
# On success `start` prints one line; when something cannot start, any subcommand prints one
# line beginning "local_slurm.sh: error:" (naming the log to read) and exits 1.
#
# Facts this relies on (Slurm 22.05, Debian 12): see tests/slurm/README.md.

set -Eeuo pipefail
PATH=$PATH:/usr/sbin:/sbin

PROG=local_slurm.sh
STATE=${REPROLIB_SLURM_DIR:-/tmp/reprolib-slurm}
RUN=${REPROLIB_SLURM_RUN:-/run/slurm}
MAX_ARRAY_SIZE=${REPROLIB_SLURM_MAX_ARRAY_SIZE:-1001}
PARTITION=${REPROLIB_SLURM_PARTITION:-main}
MAX_TIME=${REPROLIB_SLURM_MAX_TIME:-480}
DB_PORT=${REPROLIB_SLURM_DB_PORT:-3316}
ENFORCE_PART_LIMITS=${REPROLIB_SLURM_ENFORCE_PART_LIMITS:-NO}
CLUSTER=reprolib          # ClusterName, and the sacctmgr cluster
ACCOUNT=reprolib          # an account that every test may name (root's default stays "root")

ETC=$STATE/etc            # slurm.conf, slurmdbd.conf, gres.conf (found next to SLURM_CONF)
LOG=$STATE/log            # Slurm's logs, apt's log
MUNGE=$STATE/munge        # key, seed, log: owned by the munge user
# munged listens on its default socket: some Slurm clients (sacctmgr's connection to slurmdbd)
# ignore AuthInfo=socket=... and always use it.
MUNGE_SOCKET=/run/munge/munge.socket.2
DB=$STATE/mariadb         # datadir, socket, log: owned by the mysql user
DEV=$STATE/dev            # the fake GPUs
MARK=$STATE/.local_slurm  # says the folder is this script's: `purge` deletes no other
export SLURM_CONF=$ETC/slurm.conf

PACKAGES=(slurm-wlm munge slurmdbd mariadb-server mariadb-client)
COMMANDS=(slurmctld slurmd slurmdbd sbatch sacct sacctmgr munged mungekey unmunge mariadbd
          mariadb mariadb-install-db mariadb-admin)

# ---------------------------------------------------------------------------- helpers

die() {   # one line on stderr, exit 1
    echo "$PROG: error: $*" >&2
    exit 1
}
# Anything that fails unexpectedly still ends in one line naming the command.
trap 'die "line $LINENO: \"$BASH_COMMAND\" failed (exit $?)"' ERR

last_error() {   # the last error-ish line of a log, for a one-line message
    local log=$1
    [[ -r $log ]] || { echo "no log at $log"; return; }
    local line
    line=$(grep -aiE 'error|fatal|denied|refus|fail' "$log" | grep -avE 'mpi/pmix|mpi_pmix|not recommended values' | tail -n 1 || true)
    [[ -n $line ]] || line=$(tail -n 1 "$log")
    echo "${line:0:240} (log: $log)"
}

# alive PIDFILE COMM: the pid in PIDFILE is a live process named COMM (a stale pid file
# whose number was reused by another program does not count).
alive() {
    local pid
    pid=$(cat "$1" 2>/dev/null) || return 1
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$2" ]]
}

# wait_for SECONDS WHAT LOG COMMAND...: poll COMMAND (4 times a second) until it succeeds.
wait_for() {
    local seconds=$1 what=$2 log=$3
    shift 3
    local deadline=$((SECONDS + seconds))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || die "$what not ready after ${seconds}s: $(last_error "$log")"
        sleep 0.25
    done
}

# The daemons: name, pid file, process name (comm), log (for error lines).
daemon_pidfile() {
    case $1 in
        munged) echo "$RUN/munge/munged.pid" ;;
        mariadb) echo "$RUN/mysql/mariadbd.pid" ;;
        *) echo "$RUN/$1.pid" ;;
    esac
}
daemon_comm() { [[ $1 == mariadb ]] && echo mariadbd || echo "$1"; }
daemon_log() {
    case $1 in
        munged) echo "$MUNGE/munged.log" ;;
        mariadb) echo "$DB/error.log" ;;
        *) echo "$LOG/$1.log" ;;
    esac
}
DAEMONS=(munged mariadb slurmdbd slurmctld slurmd)   # start order; stop goes backwards
running() { alive "$(daemon_pidfile "$1")" "$(daemon_comm "$1")"; }

# ---------------------------------------------------------------------------- install

install_packages() {
    local missing=() cmd
    for cmd in "${COMMANDS[@]}"; do
        command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
    done
    ((${#missing[@]} == 0)) && return 0
    command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get to install ${PACKAGES[*]}"
    # Keep the packages' own init scripts from starting system-wide munge/mariadb/slurm
    # services: a temporary policy-rc.d (only if the machine has none) refuses every start.
    local policy=/usr/sbin/policy-rc.d made_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && made_policy=1
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT   # also when interrupted
    fi
    local ok=0
    export DEBIAN_FRONTEND=noninteractive
    if apt-get install -y -q --no-install-recommends "${PACKAGES[@]}" >"$LOG/apt.log" 2>&1; then
        ok=1
    elif apt-get update -q >>"$LOG/apt.log" 2>&1 \
        && apt-get install -y -q --no-install-recommends "${PACKAGES[@]}" >>"$LOG/apt.log" 2>&1; then
        ok=1   # the package lists were stale
    fi
    ((made_policy)) && rm -f "$policy" && trap - EXIT
    ((ok)) || die "apt-get install ${PACKAGES[*]} failed: $(last_error "$LOG/apt.log")"
}

# ---------------------------------------------------------------------------- configuration

# write_config FILE MODE: stdin into FILE when its content differs. A running Slurm daemon
# would not see the change: then the file is left as it is and start fails, asking for a stop.
write_config() {
    local file=$1 mode=$2 tmp name
    tmp=$(mktemp "$file.XXXXXX")
    cat >"$tmp"
    chmod "$mode" "$tmp"
    if [[ -f $file ]] && cmp -s "$tmp" "$file"; then
        rm -f "$tmp"
        return 0
    fi
    for name in slurmdbd slurmctld slurmd; do
        if running "$name"; then
            rm -f "$tmp"
            die "${file##*/} would change (settings or machine differ) while $name runs: run '$0 stop' first"
        fi
    done
    mv -f "$tmp" "$file"
}

configure() {
    mkdir -p "$ETC" "$LOG" "$DEV" "$STATE/spool/slurmctld" "$STATE/spool/slurmd" \
        "$RUN" "$RUN/munge" "$RUN/mysql"
    chmod 755 "$STATE" "$ETC" "$LOG" "$RUN"
    mkdir -p "$MUNGE" "$DB"
    chown munge:munge "$MUNGE" "$RUN/munge"
    chmod 700 "$MUNGE"
    chown mysql:mysql "$DB" "$RUN/mysql"
    chmod 700 "$DB"

    # Fake GPUs: character devices with /dev/null's numbers, so opening them is harmless.
    local major minor i
    read -r major minor < <(stat -c '%t %T' /dev/null)
    for i in 0 1; do
        [[ -c $DEV/gpu$i ]] || mknod -m 666 "$DEV/gpu$i" c "$((16#$major))" "$((16#$minor))" \
            || die "mknod $DEV/gpu$i failed (is $STATE on a nodev filesystem? set REPROLIB_SLURM_DIR)"
    done

    # The node as slurmd sees it (CPUs, RealMemory), under this machine's short host name.
    local host node cpus mem
    host=$(hostname -s)
    node=$(slurmd -C 2>/dev/null | head -n 1) || die "slurmd -C failed"
    cpus=$(sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' <<<"$node")
    mem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$node")
    [[ -n $cpus && -n $mem ]] || die "cannot read CPUs/RealMemory from 'slurmd -C': $node"
    [[ $MAX_ARRAY_SIZE =~ ^[0-9]+$ ]] || die "REPROLIB_SLURM_MAX_ARRAY_SIZE must be a number, got '$MAX_ARRAY_SIZE'"
    [[ $MAX_TIME =~ ^[0-9]+$ ]] || die "REPROLIB_SLURM_MAX_TIME must be minutes, got '$MAX_TIME'"
    NODE_SUMMARY="node $host: $cpus CPUs, $mem MB, gpu:2"

    write_config "$ETC/slurm.conf" 644 <<EOF
# Generated by tests/slurm/local_slurm.sh; edit the script, not this file.
ClusterName=$CLUSTER
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire=10: a requeued job may start again after ~10 s (default 120 s).
AuthInfo=cred_expire=10
StateSaveLocation=$STATE/spool/slurmctld
SlurmdSpoolDir=$STATE/spool/slurmd
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
# No cgroups on this machine.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
JobRequeue=1
KillWait=10
# A requeued job may start again cred_expire+1 s after its requeue, but nothing wakes the
# scheduler then: the main loop's periodic pass (sched_interval, default 60 s) starts it.
SchedulerParameters=sched_interval=5
EnforcePartLimits=$ENFORCE_PART_LIMITS
MaxArraySize=$MAX_ARRAY_SIZE
# Accounting: sacct is how submitit learns that a job died without a result.
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStorageEnforce=associations
GresTypes=gpu
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem Gres=gpu:2 State=UNKNOWN
PartitionName=$PARTITION Nodes=$host Default=YES MaxTime=$MAX_TIME State=UP
EOF
    write_config "$ETC/gres.conf" 644 <<EOF
AutoDetect=off
Name=gpu File=$DEV/gpu[0-1]
EOF
    # The accounting database's password: made once, readable by root only.
    [[ -s $ETC/db.pass ]] || (umask 077 && head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$ETC/db.pass")
    write_config "$ETC/slurmdbd.conf" 600 <<EOF
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=root
PidFile=$RUN/slurmdbd.pid
LogFile=$LOG/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$(cat "$ETC/db.pass")
StorageLoc=slurm_acct_db
EOF
    # Let the Slurm commands find the configuration without SLURM_CONF, when /etc/slurm is free.
    local link=/etc/slurm/slurm.conf
    if [[ ! -e $link && ! -L $link ]] || [[ -L $link && $(readlink "$link") == */etc/slurm.conf ]]; then
        mkdir -p /etc/slurm && ln -sfn "$ETC/slurm.conf" "$link"
    fi
}

# ---------------------------------------------------------------------------- start

start_munged() {
    [[ -s $MUNGE/munge.key ]] || {
        mungekey --create --keyfile="$MUNGE/munge.key" >/dev/null 2>&1 || die "mungekey --create failed"
        chown munge:munge "$MUNGE/munge.key"
        chmod 400 "$MUNGE/munge.key"
    }
    if ! running munged; then
        munge -n -S "$MUNGE_SOCKET" >/dev/null 2>&1 \
            && die "a munged this script did not start answers on $MUNGE_SOCKET (a system munge service?): stop it first"
        mkdir -p "${MUNGE_SOCKET%/*}"
        chown munge:munge "${MUNGE_SOCKET%/*}"
        chmod 755 "${MUNGE_SOCKET%/*}"
        rm -f "$MUNGE_SOCKET" "$MUNGE_SOCKET.lock"
        runuser -u munge -- /usr/sbin/munged --socket="$MUNGE_SOCKET" --key-file="$MUNGE/munge.key" \
            --pid-file="$(daemon_pidfile munged)" --log-file="$MUNGE/munged.log" \
            --seed-file="$MUNGE/munged.seed" >/dev/null 2>&1 \
            || die "munged did not start: $(last_error "$MUNGE/munged.log")"
    fi
    wait_for 10 munged "$MUNGE/munged.log" \
        bash -c "munge -n -S '$MUNGE_SOCKET' | unmunge -S '$MUNGE_SOCKET'"
}

mariadb_sql() { mariadb --no-defaults --socket="$DB/mysqld.sock" -u root -e "$1"; }

start_mariadb() {
    if [[ ! -d $DB/data/mysql ]]; then
        mariadb-install-db --no-defaults --user=mysql --datadir="$DB/data" --auth-root-authentication-method=socket \
            --skip-test-db >"$LOG/mariadb-install.log" 2>&1 \
            || die "mariadb-install-db failed: $(last_error "$LOG/mariadb-install.log")"
    fi
    if ! running mariadb; then
        # Private instance: no /etc/mysql defaults, TCP on 127.0.0.1 only; the InnoDB sizes are the
        # least slurmdbd does not warn about (the pool is reserved, not used: RSS stays ~100 MB).
        setsid mariadbd --no-defaults --user=mysql --datadir="$DB/data" --socket="$DB/mysqld.sock" \
            --pid-file="$(daemon_pidfile mariadb)" --log-error="$DB/error.log" \
            --bind-address=127.0.0.1 --port="$DB_PORT" --skip-name-resolve --skip-log-bin \
            --performance-schema=OFF --innodb-buffer-pool-size=512M --innodb-log-file-size=64M \
            --innodb-lock-wait-timeout=900 </dev/null >/dev/null 2>&1 &
        disown
    fi
    wait_for 60 mariadb "$DB/error.log" mariadb-admin --no-defaults --socket="$DB/mysqld.sock" ping
    local pass
    pass=$(cat "$ETC/db.pass")
    mariadb_sql "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
        CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$pass';
        CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$pass';
        GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
        GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';" >/dev/null 2>&1 \
        || die "cannot create the accounting database and user: $(last_error "$DB/error.log")"
}

start_slurm_daemon() {   # slurmdbd, slurmctld, slurmd: they fork and write their pid files
    local name=$1
    running "$name" && return 0
    "$name" >>"$LOG/$name.start.log" 2>&1 </dev/null || die "$name did not start: $(last_error "$LOG/$name.log")"
    wait_for 15 "$name" "$LOG/$name.log" running "$name"
}

register_accounting() {   # cluster, account, root in it: once, in the database
    wait_for 60 slurmdbd "$LOG/slurmdbd.log" sacctmgr -n show cluster
    [[ -n $(sacctmgr -n -P show cluster "$CLUSTER" format=cluster 2>/dev/null) ]] \
        || sacctmgr -i add cluster "$CLUSTER" >/dev/null || die "sacctmgr add cluster $CLUSTER failed"
    [[ -n $(sacctmgr -n -P show account "$ACCOUNT" format=account 2>/dev/null) ]] \
        || sacctmgr -i add account "$ACCOUNT" cluster="$CLUSTER" description="reprolib tests" \
            organization=reprolib >/dev/null || die "sacctmgr add account $ACCOUNT failed"
    [[ -n $(sacctmgr -n -P show assoc where user=root account="$ACCOUNT" format=user 2>/dev/null) ]] \
        || sacctmgr -i add user root account="$ACCOUNT" cluster="$CLUSTER" >/dev/null \
        || die "sacctmgr add user root account=$ACCOUNT failed"
}

node_idle() {
    local state
    state=$(sinfo -h -N -o '%t' 2>/dev/null) || return 1
    [[ $state == idle* || $state == mix* ]]
}

cmd_start() {
    ((EUID == 0)) || die "must run as root (apt-get, mknod, daemons as other users): sudo $0 start"
    local t0=$SECONDS
    if [[ -d $STATE && ! -e $MARK && -n $(ls -A "$STATE") ]]; then
        die "REPROLIB_SLURM_DIR=$STATE is a folder this script did not make: name a new or empty one"
    fi
    mkdir -p "$LOG"
    touch "$MARK"
    install_packages
    configure
    start_munged
    start_mariadb
    start_slurm_daemon slurmdbd
    register_accounting
    start_slurm_daemon slurmctld
    wait_for 30 slurmctld "$LOG/slurmctld.log" scontrol ping
    start_slurm_daemon slurmd
    wait_for 60 "the node (sinfo idle)" "$LOG/slurmd.log" node_idle
    wait_for 30 sacct "$LOG/slurmdbd.log" sacct -n -X
    echo "local Slurm up in $((SECONDS - t0))s: cluster $CLUSTER, partition $PARTITION (default, MaxTime ${MAX_TIME} min," \
        "MaxArraySize $MAX_ARRAY_SIZE), $NODE_SUMMARY; account $ACCOUNT; munged, mariadb :$DB_PORT, slurmdbd," \
        "slurmctld, slurmd; SLURM_CONF=$SLURM_CONF; state in $STATE"
}

# ---------------------------------------------------------------------------- stop, status

stop_daemon() {   # TERM by pid file, KILL after a grace period
    local name=$1 grace=$2 pidfile pid i
    pidfile=$(daemon_pidfile "$name")
    if running "$name"; then
        pid=$(cat "$pidfile")
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < grace * 4; i++)); do
            [[ -d /proc/$pid ]] || break
            sleep 0.25
        done
        if [[ -d /proc/$pid ]]; then
            kill -KILL "$pid" 2>/dev/null || true
            echo "$PROG: $name (pid $pid) did not stop in ${grace}s, killed" >&2
        fi
    fi
    rm -f "$pidfile"
}

cmd_stop() {
    ((EUID == 0)) || die "must run as root to stop the daemons: sudo $0 stop"
    # Cancel every job first, so that no job's processes outlive slurmd.
    if running slurmctld && command -v squeue >/dev/null; then
        local jobs i
        jobs=$(squeue -h -o '%A' 2>/dev/null || true)
        if [[ -n $jobs ]]; then
            # shellcheck disable=SC2086
            scancel $jobs 2>/dev/null || true
            for ((i = 0; i < 60; i++)); do
                [[ -z $(squeue -h -o '%A' -t running,completing 2>/dev/null) ]] && break
                sleep 0.25
            done
        fi
    fi
    local k
    for ((k = ${#DAEMONS[@]} - 1; k >= 0; k--)); do
        case ${DAEMONS[k]} in mariadb) stop_daemon mariadb 30 ;; *) stop_daemon "${DAEMONS[k]}" 10 ;; esac
    done
    echo "local Slurm stopped (state kept in $STATE)"
}

cmd_status() {
    local name up=0
    for name in "${DAEMONS[@]}"; do
        if running "$name"; then
            echo "$name: running (pid $(cat "$(daemon_pidfile "$name")"))"
            up=$((up + 1))
        else
            echo "$name: stopped (log: $(daemon_log "$name"))"
        fi
    done
    ((up == ${#DAEMONS[@]})) && { echo "SLURM_CONF=$SLURM_CONF"; return 0; }
    return 3
}

cmd_purge() {
    if [[ -d $STATE && ! -e $MARK ]]; then
        die "not deleting $STATE: this script did not make it (no $MARK)"
    fi
    cmd_stop >/dev/null
    local link=/etc/slurm/slurm.conf
    [[ -L $link && $(readlink "$link") == "$ETC/slurm.conf" ]] && rm -f "$link"
    rm -rf "$STATE"
    echo "local Slurm stopped and $STATE deleted"
}

case ${1:-} in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status || exit $? ;;
    purge) cmd_purge ;;
    *)
        echo "usage: $0 start|stop|status|purge   (see the comments at the top of this file)" >&2
        exit 2
        ;;
esac
