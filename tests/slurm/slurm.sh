#!/usr/bin/env bash
# Start/stop a real single-node SLURM cluster (slurmctld + slurmd + slurmdbd,
# munged, MariaDB) on 127.0.0.1 for tests and CI, without systemd.
#
#   tests/slurm/slurm.sh install        # apt-get install the packages (root)
#   eval "$(tests/slurm/slurm.sh start DIR)"   # prints only `export ...` lines
#   tests/slurm/slurm.sh status DIR
#   tests/slurm/slurm.sh stop DIR
#
# Everything (configs, state, logs, pid files, munge key, MariaDB datadir) lives
# under DIR.  The only change outside DIR is /etc/slurm/slurm.conf, which is
# replaced by a symlink to DIR/etc/slurm.conf while the cluster runs (any
# existing file is backed up into DIR and restored by `stop`), plus the system
# user `bfuser` that is created if missing (and left in place).
#
# Environment knobs (all optional):
#   SLURM_TEST_CLUSTER   cluster name            [baseforge]
#   SLURM_TEST_ACCOUNT   accounting account      [baseforge]
#   SLURM_TEST_USER      unprivileged test user  [bfuser]
#   SLURM_TEST_PORT_BASE first port to try       [16817]
#   SLURM_TEST_TIMEOUT   seconds to wait per step [60]
set -euo pipefail

CLUSTER=${SLURM_TEST_CLUSTER:-baseforge}
ACCOUNT=${SLURM_TEST_ACCOUNT:-baseforge}
TEST_USER=${SLURM_TEST_USER:-bfuser}
PORT_BASE=${SLURM_TEST_PORT_BASE:-16817}
TIMEOUT=${SLURM_TEST_TIMEOUT:-60}
PARTITION=debug
ETC_CONF=/etc/slurm/slurm.conf

PACKAGES=(slurmctld slurmd slurmdbd slurm-client slurm-wlm-basic-plugins
          slurm-wlm-mysql-plugin munge mariadb-server mariadb-client
          util-linux passwd procps)

log() { printf 'slurm.sh: %s\n' "$*" >&2; }
die() { printf 'slurm.sh: ERROR: %s\n' "$*" >&2; exit 1; }

need_root() { [ "$(id -u)" = 0 ] || die "must run as root"; }

# ---------------------------------------------------------------- install
cmd_install() {
    need_root
    local missing=() p
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' \
            || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing: ${missing[*]}"
        # Never let the packages' init scripts start system daemons.
        local policy_created=0
        if [ ! -e /usr/sbin/policy-rc.d ]; then
            printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
            chmod 755 /usr/sbin/policy-rc.d
            policy_created=1
        fi
        local rc=0
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
            "${missing[@]}" >/tmp/slurm-sh-apt.log 2>&1 || rc=$?
        if [ "$policy_created" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
        if [ "$rc" != 0 ]; then
            # the package lists may be missing on a fresh machine
            log "apt-get install failed (rc=$rc); retrying after apt-get update"
            apt-get update -q >/tmp/slurm-sh-apt-update.log 2>&1 || true
            [ ! -e /usr/sbin/policy-rc.d ] && { printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; policy_created=1; }
            rc=0
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
                "${missing[@]}" >/tmp/slurm-sh-apt.log 2>&1 || rc=$?
            if [ "$policy_created" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
            [ "$rc" = 0 ] || { tail -20 /tmp/slurm-sh-apt.log >&2; die "apt-get install failed"; }
        fi
    fi
    ensure_test_user
}

ensure_test_user() {
    if ! id -u "$TEST_USER" >/dev/null 2>&1; then
        log "creating system user $TEST_USER"
        useradd --system --create-home --home-dir "/home/$TEST_USER" \
            --shell /bin/bash "$TEST_USER"
    fi
    local home; home=$(getent passwd "$TEST_USER" | cut -d: -f6)
    if [ ! -d "$home" ]; then
        mkdir -p "$home"; chown "$TEST_USER:" "$home"
    fi
}

# ---------------------------------------------------------------- helpers
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

USED_PORTS=" "
free_port() {
    local p=$1
    while port_in_use "$p" || [[ "$USED_PORTS" == *" $p "* ]]; do
        p=$((p + 1))
        [ "$p" -lt 65000 ] || die "no free port found"
    done

    echo "$p"
}

# start_daemon NAME CMD...  -- runs CMD in its own session, records its PID
start_daemon() {
    local name=$1; shift
    setsid "$@" >>"$D/log/$name.out" 2>&1 </dev/null &
    local pid=$!
    echo "$pid" >"$D/run/$name.pid"
    log "started $name (pid $pid)"
}

pid_of() { cat "$D/run/$1.pid" 2>/dev/null || true; }

# alive NAME: the recorded PID exists and runs the expected program
alive() {
    local pid; pid=$(pid_of "$1")
    [ -n "$pid" ] && [ -d "/proc/$pid" ] || return 1
    local exe; exe=$(readlink "/proc/$pid/exe" 2>/dev/null || true)
    case "$1" in
        mariadb) [[ "$exe" == *mariadbd* || "$exe" == *mysqld* ]] ;;
        # munged starts through setpriv, which execs it: for a moment the PID still runs setpriv
        munged)  [[ "$exe" == *munged* || "$exe" == */setpriv ]] ;;
        *)       [[ "$exe" == *"$1"* ]] ;;
    esac
}

# wait_for DESC LOGFILE DAEMON CMD... -- poll CMD until success
wait_for() {
    local desc=$1 logf=$2 daemon=$3; shift 3
    local deadline=$((SECONDS + TIMEOUT))
    until "$@" >/dev/null 2>&1; do
        if [ -n "$daemon" ] && ! alive "$daemon"; then
            log "$daemon died while waiting for: $desc"
            log "---- tail of $logf"; tail -n 30 "$logf" >&2 || true
            return 1
        fi
        if [ $SECONDS -ge $deadline ]; then
            log "timed out after ${TIMEOUT}s waiting for: $desc"
            log "---- tail of $logf"; tail -n 30 "$logf" >&2 || true
            [ -n "$daemon" ] && [ -s "$D/log/$daemon.out" ] && {
                log "---- tail of $D/log/$daemon.out"; tail -n 10 "$D/log/$daemon.out" >&2; }
            return 1
        fi
        sleep 0.2
    done
}

node_idle() {
    local st; st=$(sinfo -h -n "$NODE" -o '%t' 2>/dev/null) || return 1
    [ "$st" = idle ]
}

mysql_sock_ok() { mariadb --no-defaults -S "$D/mysql/mysql.sock" -u root -e 'SELECT 1'; }

setdir() {
    [ -n "${1:-}" ] || die "usage: $0 {start|stop|status} DIR"
    mkdir -p "$1"
    D=$(cd "$1" && pwd -P)
    NODE=$(hostname -s)
    export SLURM_CONF="$D/etc/slurm.conf"
}

# ---------------------------------------------------------------- start
cmd_start() {
    need_root
    setdir "$1"
    local t0=$SECONDS d
    for d in munged mariadb slurmdbd slurmctld slurmd; do
        alive "$d" && die "$d already running for $D (pid $(pid_of $d)); run stop first"
    done
    for b in munged mariadbd mariadb-install-db slurmctld slurmd slurmdbd sacctmgr sinfo setsid; do
        command -v "$b" >/dev/null || die "$b not found; run: $0 install"
    done
    ensure_test_user

    mkdir -p "$D"/{etc,log,run,munge,state/ctld,state/d,mysql}
    # the test user must be able to read slurm.conf and reach the munge socket
    chmod 755 "$D" "$D/etc" "$D/log" "$D/run" "$D/state"
    local p=$D
    while [ "$p" != / ]; do
        runuser -u "$TEST_USER" -- test -x "$p" \
            || die "$TEST_USER cannot traverse $p; use a DIR with world-searchable parents"
        p=$(dirname "$p")
    done

    trap 'log "start failed; stopping what was started"; cmd_stop_inner || true' ERR
    set -E

    # ---- ports
    USED_PORTS=" "
    local ctld_port slurmd_port dbd_port mysql_port
    ctld_port=$(free_port "$PORT_BASE"); USED_PORTS+="$ctld_port "
    slurmd_port=$(free_port $((ctld_port + 1))); USED_PORTS+="$slurmd_port "
    dbd_port=$(free_port $((slurmd_port + 1))); USED_PORTS+="$dbd_port "
    mysql_port=$(free_port $((dbd_port + 1))); USED_PORTS+="$mysql_port "

    # ---- munge
    chown munge: "$D/munge"; chmod 700 "$D/munge"
    if [ ! -s "$D/munge/munge.key" ]; then
        dd if=/dev/urandom of="$D/munge/munge.key" bs=1024 count=1 status=none
    fi
    chown munge: "$D/munge/munge.key"; chmod 600 "$D/munge/munge.key"
    # the socket must be reachable by everyone, so it gets its own 0755 dir
    mkdir -p "$D/munge/sock"; chown munge: "$D/munge/sock"; chmod 755 "$D/munge/sock"
    chmod 711 "$D/munge"
    local msock="$D/munge/sock/munge.socket"
    rm -f "$msock" "$msock.lock"
    start_daemon munged setpriv --reuid=munge --regid=munge --init-groups \
        /usr/sbin/munged -F --force --socket="$msock" --key-file="$D/munge/munge.key" \
        --pid-file="$D/munge/munged.pid" --log-file="$D/munge/munged.log" \
        --seed-file="$D/munge/munged.seed"
    wait_for "munged socket" "$D/munge/munged.log" munged \
        sh -c "munge -S '$msock' -n | unmunge -S '$msock'"

    # ---- MariaDB
    if [ ! -d "$D/mysql/data/mysql" ]; then
        log "initialising MariaDB datadir"
        mariadb-install-db --no-defaults --user=root --datadir="$D/mysql/data" \
            --auth-root-authentication-method=socket --skip-test-db \
            >"$D/log/mariadb-install-db.log" 2>&1 \
            || { tail -20 "$D/log/mariadb-install-db.log" >&2; false; }
    fi
    start_daemon mariadb /usr/sbin/mariadbd --no-defaults --user=root \
        --datadir="$D/mysql/data" --socket="$D/mysql/mysql.sock" \
        --pid-file="$D/mysql/mariadb.pid" --log-error="$D/log/mariadb.log" \
        --bind-address=127.0.0.1 --port="$mysql_port" --skip-name-resolve \
        --innodb-buffer-pool-size=128M --innodb-lock-wait-timeout=900 \
        --innodb-log-file-size=64M --max-allowed-packet=16M
    wait_for "MariaDB socket" "$D/log/mariadb.log" mariadb mysql_sock_ok
    local dbpass_file="$D/mysql/slurm.pass"
    [ -s "$dbpass_file" ] || { head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$dbpass_file"; }
    chmod 600 "$dbpass_file"
    local dbpass; dbpass=$(cat "$dbpass_file")
    mariadb --no-defaults -S "$D/mysql/mysql.sock" -u root <<SQL
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$dbpass';
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$dbpass';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
FLUSH PRIVILEGES;
SQL

    # ---- configs
    local cpus mem_mb
    cpus=$(nproc)
    # a bit less than the memory that is free now
    mem_mb=$(awk '/^MemAvailable:/ {printf "%d", $2/1024*0.9}' /proc/meminfo)
    cat >"$D/etc/slurm.conf" <<EOF
# generated by tests/slurm/slurm.sh for $D
ClusterName=$CLUSTER
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$msock
CommunicationParameters=NoInAddrAny,NoCtldInAddrAny
StateSaveLocation=$D/state/ctld
SlurmdSpoolDir=$D/state/d
SlurmctldPidFile=$D/run/slurmctld.daemon.pid
SlurmdPidFile=$D/run/slurmd.daemon.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$dbd_port
# with slurmdbd this names the munge socket used to talk to slurmdbd
# (AuthInfo alone is not used for that connection)
AccountingStoragePass=$msock
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
MailProg=/bin/true
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=300
KillWait=5
Waittime=0
NodeName=$NODE NodeAddr=127.0.0.1 NodeHostname=$NODE CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
    chmod 644 "$D/etc/slurm.conf"
    umask 077
    cat >"$D/etc/slurmdbd.conf" <<EOF
# generated by tests/slurm/slurm.sh for $D
AuthType=auth/munge
AuthInfo=socket=$msock
DbdHost=$NODE
DbdAddr=127.0.0.1
DbdPort=$dbd_port
SlurmUser=root
LogFile=$D/log/slurmdbd.log
PidFile=$D/run/slurmdbd.daemon.pid
DebugLevel=info
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$mysql_port
StorageUser=slurm
StoragePass=$dbpass
StorageLoc=slurm_acct_db
EOF
    umask 022
    chown root: "$D/etc/slurmdbd.conf"; chmod 600 "$D/etc/slurmdbd.conf"

    # ---- /etc/slurm/slurm.conf -> our config (nested srun of the
    # snakemake jobstep plugin drops SLURM_CONF)
    mkdir -p /etc/slurm
    if [ -L "$ETC_CONF" ] || [ -e "$ETC_CONF" ]; then
        local cur; cur=$(readlink "$ETC_CONF" 2>/dev/null || true)
        if [ "$cur" != "$D/etc/slurm.conf" ]; then
            [ -e "$D/run/etc-slurm.conf.backup" ] || [ -L "$D/run/etc-slurm.conf.backup" ] \
                || mv "$ETC_CONF" "$D/run/etc-slurm.conf.backup"
            rm -f "$ETC_CONF"
        fi
    else
        : >"$D/run/etc-slurm.conf.absent"
    fi
    ln -sfn "$D/etc/slurm.conf" "$ETC_CONF"

    # ---- slurmdbd
    start_daemon slurmdbd /usr/sbin/slurmdbd -D
    wait_for "slurmdbd (sacctmgr show cluster)" "$D/log/slurmdbd.log" slurmdbd \
        sacctmgr -n show cluster

    # ---- accounting objects
    if ! sacctmgr -n -P show cluster format=cluster | grep -qx "$CLUSTER"; then
        sacctmgr -i add cluster "$CLUSTER" >>"$D/log/sacctmgr.log"
    fi
    if ! sacctmgr -n -P show account format=account | grep -qx "$ACCOUNT"; then
        sacctmgr -i add account "$ACCOUNT" cluster="$CLUSTER" \
            description="baseforge tests" organization=baseforge >>"$D/log/sacctmgr.log"
    fi
    local u
    for u in root "$TEST_USER"; do
        if ! sacctmgr -n -P show assoc where user="$u" account="$ACCOUNT" \
                format=user | grep -qx "$u"; then
            sacctmgr -i add user "$u" account="$ACCOUNT" cluster="$CLUSTER" \
                defaultaccount="$ACCOUNT" >>"$D/log/sacctmgr.log"
        fi
    done

    # ---- slurmctld, slurmd
    start_daemon slurmctld /usr/sbin/slurmctld -D -i
    wait_for "slurmctld (scontrol ping)" "$D/log/slurmctld.log" slurmctld \
        sh -c 'scontrol ping | grep -q UP'
    start_daemon slurmd /usr/sbin/slurmd -D
    wait_for "node $NODE idle in sinfo" "$D/log/slurmd.log" slurmd node_idle
    wait_for "sacctmgr show cluster lists $CLUSTER" "$D/log/slurmdbd.log" slurmdbd \
        sh -c "sacctmgr -n -P show cluster format=cluster | grep -qx '$CLUSTER'"

    trap - ERR
    log "cluster up in $((SECONDS - t0))s: node $NODE idle, partition $PARTITION, account $ACCOUNT"
    echo "export SLURM_CONF=$D/etc/slurm.conf"
    echo "export SLURM_TEST_DIR=$D"
    echo "export SLURM_TEST_ACCOUNT=$ACCOUNT"
    echo "export SLURM_TEST_PARTITION=$PARTITION"
    echo "export SLURM_TEST_USER=$TEST_USER"
}

# ---------------------------------------------------------------- stop
kill_daemon() {
    local name=$1 pid
    pid=$(pid_of "$name")
    [ -n "$pid" ] || return 0
    if alive "$name"; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do
            [ -d "/proc/$pid" ] || break
            # an exited daemon stays a zombie (PID 1 here does not reap): done
            if [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" = Z ]; then break; fi
            sleep 0.1
        done
        if [ -d "/proc/$pid" ] && alive "$name"; then
            log "$name (pid $pid) did not stop after 10s; sending KILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        log "stopped $name (pid $pid)"
    fi
    rm -f "$D/run/$name.pid"
}

cmd_stop_inner() {
    # cancel leftover jobs so that no slurmstepd outlives the cluster
    if alive slurmctld; then
        scancel --partition="$PARTITION" >/dev/null 2>&1 || true
        for _ in $(seq 1 50); do
            [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break
            sleep 0.2
        done
    fi
    local d
    for d in slurmd slurmctld slurmdbd mariadb munged; do
        kill_daemon "$d"
    done
    # slurmstepd processes of jobs that were still running (by PID, ours only)
    local sp
    for sp in $(pgrep -x slurmstepd 2>/dev/null || true); do
        if tr '\0' ' ' <"/proc/$sp/environ" 2>/dev/null | grep -q "SLURM_CONF=$D/etc/slurm.conf"; then
            kill -KILL "$sp" 2>/dev/null || true
        fi
    done
    # restore /etc/slurm/slurm.conf
    if [ -L "$ETC_CONF" ] && [ "$(readlink "$ETC_CONF")" = "$D/etc/slurm.conf" ]; then
        rm -f "$ETC_CONF"
    fi
    if [ -e "$D/run/etc-slurm.conf.backup" ] || [ -L "$D/run/etc-slurm.conf.backup" ]; then
        if [ ! -e "$ETC_CONF" ] && [ ! -L "$ETC_CONF" ]; then
            mv "$D/run/etc-slurm.conf.backup" "$ETC_CONF"
            log "restored original $ETC_CONF"
        fi
    fi
    rm -f "$D/run/etc-slurm.conf.absent"
}

cmd_stop() {
    need_root
    [ -d "${1:-}" ] || die "usage: $0 stop DIR (DIR must exist)"
    setdir "$1"
    cmd_stop_inner
}

# ---------------------------------------------------------------- status
cmd_status() {
    [ -d "${1:-}" ] || die "usage: $0 status DIR (DIR must exist)"
    setdir "$1"
    local d rc=0
    for d in munged mariadb slurmdbd slurmctld slurmd; do
        if alive "$d"; then
            printf '%-10s running (pid %s)\n' "$d" "$(pid_of $d)"
        else
            printf '%-10s stopped\n' "$d"; rc=1
        fi
    done
    printf '%-10s %s\n' "etc-conf" "$(readlink "$ETC_CONF" 2>/dev/null || echo 'not linked')"
    if [ $rc = 0 ]; then
        sinfo -N -o '%N %P %t %c %m' || rc=1
    fi
    return $rc
}

case "${1:-}" in
    install) cmd_install ;;
    start)   cmd_start "${2:-}" ;;
    stop)    cmd_stop "${2:-}" ;;
    status)  cmd_status "${2:-}" ;;
    *) echo "usage: $0 {install|start DIR|stop DIR|status DIR}" >&2; exit 2 ;;
esac
