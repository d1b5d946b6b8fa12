#!/usr/bin/env bash
# Smoke test against a cluster started by tests/slurm/slurm.sh start DIR.
#
#   eval "$(tests/slurm/slurm.sh start /tmp/slurm)"
#   tests/slurm/smoke.sh            # uses SLURM_CONF / SLURM_TEST_* from start
#   tests/slurm/smoke.sh --no-snakemake   # skip the snakemake part
#
# Checks, as root and as the unprivileged test user:
#   sbatch --wait job that writes a file and runs `srun hostname`,
#   a plain `srun hostname`, and `sacct -j ID` showing COMPLETED with the user;
# then a two-rule Snakefile run by the test user with the SLURM executor plugin.
# Exits non-zero on the first failure.  Prints "N passed, N failed" at the end.
#
# Env: SLURM_CONF (required), SLURM_TEST_ACCOUNT [baseforge],
#      SLURM_TEST_PARTITION [debug], SLURM_TEST_USER [bfuser],
#      SNAKEMAKE_VENV [/tmp/baseforge-slurm-venv] (created if missing, with
#      /usr/bin/python3 so the test user can execute it),
#      SNAKEMAKE_VERSION [9.27.1], SLURM_PLUGIN_SPEC [snakemake-executor-plugin-slurm]
set -uo pipefail

: "${SLURM_CONF:?SLURM_CONF not set; eval the output of slurm.sh start DIR}"
export SLURM_CONF
ACCOUNT=${SLURM_TEST_ACCOUNT:-baseforge}
PARTITION=${SLURM_TEST_PARTITION:-debug}
TUSER=${SLURM_TEST_USER:-bfuser}
VENV=${SNAKEMAKE_VENV:-/tmp/baseforge-slurm-venv}
SMK_VERSION=${SNAKEMAKE_VERSION:-9.27.1}
PLUGIN_SPEC=${SLURM_PLUGIN_SPEC:-snakemake-executor-plugin-slurm}
RUN_SNAKEMAKE=1
[ "${1:-}" = --no-snakemake ] && RUN_SNAKEMAKE=0

PASS=0 FAIL=0
WORK=$(mktemp -d /tmp/slurm-smoke.XXXXXX)
chmod 755 "$WORK"

ok()   { PASS=$((PASS + 1)); echo "ok   - $*"; }
fail() {
    FAIL=$((FAIL + 1)); echo "FAIL - $*"
    echo "$PASS passed, $FAIL failed"
    echo "(work dir kept: $WORK)"
    exit 1
}

# as USER CMD... -- run a command as root or as the test user
as() {
    local u=$1; shift
    if [ "$u" = root ]; then "$@"
    else runuser -u "$u" -- env SLURM_CONF="$SLURM_CONF" HOME="$(getent passwd "$u" | cut -d: -f6)" "$@"
    fi
}

# sacct_state ID USER -- wait (accounting is asynchronous) until sacct shows
# the job line as COMPLETED for USER
sacct_check() {
    local id=$1 u=$2 line
    for _ in $(seq 1 50); do
        line=$(sacct -j "$id" -X --format=JobID,User,State -n -P 2>/dev/null | head -1)
        [ "$line" = "$id|$u|COMPLETED" ] && return 0
        sleep 0.2
    done
    echo "sacct -j $id says: '${line:-<nothing>}' (want $id|$u|COMPLETED)"
    sacct -j "$id" --format=JobID,User,State,ExitCode -n -P
    return 1
}

sinfo -h -o '%P %t' | grep -q "^$PARTITION\* idle\|^$PARTITION idle" \
    && ok "partition $PARTITION has an idle node" || fail "no idle node: $(sinfo 2>&1)"

for u in root "$TUSER"; do
    d="$WORK/$u"; mkdir -p "$d"; chown "$u:" "$d"
    out=$(cd "$d" && as "$u" sbatch --parsable --wait -p "$PARTITION" -A "$ACCOUNT" \
        -o "$d/job.out" --wrap "id -un > $d/written.txt; srun hostname" 2>&1)
    rc=$?
    id=${out%%;*}
    [ $rc = 0 ] && [[ "$id" =~ ^[0-9]+$ ]] && ok "$u: sbatch --wait job $id finished" \
        || fail "$u: sbatch --wait failed (rc=$rc): $out"
    [ "$(cat "$d/written.txt" 2>/dev/null)" = "$u" ] \
        && [ "$(stat -c %U "$d/written.txt")" = "$u" ] \
        && ok "$u: job wrote $d/written.txt as $u" || fail "$u: job did not write its file"
    grep -qx "$(hostname -s)" "$d/job.out" \
        && ok "$u: srun hostname inside the batch job" || fail "$u: job output: $(cat "$d/job.out")"
    sacct_check "$id" "$u" && ok "$u: sacct shows $id|$u|COMPLETED" || fail "$u: sacct check"
    h=$(cd "$d" && as "$u" srun -p "$PARTITION" -A "$ACCOUNT" hostname 2>&1)
    [ "$h" = "$(hostname -s)" ] && ok "$u: srun hostname" || fail "$u: srun hostname: $h"
done

if [ $RUN_SNAKEMAKE = 1 ]; then
    # a predictable /tmp path: never run (as root) what someone else put there or can change
    for d in "$VENV" "$VENV/bin"; do
        if [ -L "$d" ] || { [ -e "$d" ] && [ "$(stat -c '%u' "$d")" != 0 ]; } \
           || { [ -e "$d" ] && [ $(( 0$(stat -c '%a' "$d") & 022 )) != 0 ]; }; then
            echo "# $d is not root's own: recreating $VENV"; rm -rf "$VENV"
        fi
    done
    if [ ! -x "$VENV/bin/snakemake" ] \
        || ! "$VENV/bin/python" -c 'import snakemake_executor_plugin_slurm' 2>/dev/null; then
        echo "# creating $VENV (snakemake==$SMK_VERSION $PLUGIN_SPEC)"
        /usr/bin/python3 -m venv "$VENV" || fail "python3 -m venv $VENV"
        "$VENV/bin/pip" install -q "snakemake==$SMK_VERSION" "$PLUGIN_SPEC" >"$WORK/pip.log" 2>&1 \
            || { tail -20 "$WORK/pip.log"; fail "pip install snakemake"; }
    fi
    chmod -R a+rX "$VENV"
    d="$WORK/snakemake"; mkdir -p "$d"
    cat >"$d/Snakefile" <<'EOF'
rule all:
    input: "b.txt"

rule a:
    output: "a.txt"
    shell: "hostname > {output}; id -un >> {output}"

rule b:
    input: "a.txt"
    output: "b.txt"
    shell: "cat {input} > {output}; echo done >> {output}"
EOF
    chown -R "$TUSER:" "$d"
    (cd "$d" && as "$TUSER" timeout 600 "$VENV/bin/snakemake" --executor slurm --jobs 2 \
        --default-resources slurm_partition="$PARTITION" slurm_account="$ACCOUNT" \
        --slurm-init-seconds-before-status-checks 2 >"$d/snakemake.log" 2>&1)
    rc=$?
    [ $rc = 0 ] && ok "snakemake --executor slurm as $TUSER" \
        || { tail -40 "$d/snakemake.log"; fail "snakemake rc=$rc (log $d/snakemake.log)"; }
    printf '%s\n%s\ndone\n' "$(hostname -s)" "$TUSER" | cmp -s - "$d/b.txt" \
        && ok "snakemake output b.txt is right" || fail "b.txt: $(cat "$d/b.txt" 2>&1)"
    ids=$(grep -o 'submitted with SLURM jobid [0-9]*' "$d/snakemake.log" | awk '{print $NF}')
    [ "$(echo $ids | wc -w)" = 2 ] && ok "snakemake submitted 2 SLURM jobs ($(echo $ids))" \
        || fail "expected 2 SLURM job ids in the log, got: '$ids'"
    for id in $ids; do
        sacct_check "$id" "$TUSER" && ok "sacct shows snakemake job $id|$TUSER|COMPLETED" \
            || fail "sacct check of snakemake job $id"
    done
fi

echo "$PASS passed, $FAIL failed"
rm -rf "$WORK"
