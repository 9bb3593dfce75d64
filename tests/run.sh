#!/bin/sh
# Runs every test suite (each speaks TAP), shows failures, and ends with one line:
#   N passed, N failed
# A suite that exits non-zero without a "not ok" line counts as one failure.
# Environment (set by the Makefile): VIGIL_BUILD, BUSTED, LUA, LUA_PATH, LUA_CPATH.
# TESTS=name,... runs only the named suites (c, spec, conformance, e2e).
set -u
BUILD=${VIGIL_BUILD:-build}
BUSTED=${BUSTED:-busted --lua=lua5.4}
LUA=${LUA:-lua5.4}
LOGDIR=$BUILD/test-logs
mkdir -p "$LOGDIR"
pass=0 fail=0

want() { [ -z "${TESTS:-}" ] || echo ",$TESTS," | grep -q ",$1,"; }

run_suite() { # name, command...
    name=$1; shift
    log="$LOGDIR/$(echo "$name" | tr '/ ' '__').tap"
    "$@" >"$log" 2>&1
    rc=$?
    p=$(grep -c '^ok ' "$log")
    f=$(grep -c '^not ok ' "$log")
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        f=1
        echo "FAIL $name: exited $rc without a failing test line (log: $log)"
        tail -n 20 "$log" | sed 's/^/    /'
    fi
    if [ "$f" -gt 0 ]; then
        echo "FAIL $name: $p passed, $f failed (log: $log)"
        grep -A8 '^not ok ' "$log" | head -n 60 | sed 's/^/    /'
    else
        echo "ok   $name: $p passed"
    fi
    pass=$((pass + p)); fail=$((fail + f))
}

if want c; then
    for t in "$BUILD"/tests/test_*; do
        [ -x "$t" ] || continue
        run_suite "c/$(basename "$t")" "$t"
    done
fi
if want spec && [ -n "$(find tests/spec -name "*_spec.lua" 2>/dev/null)" ]; then
    run_suite spec $BUSTED -o TAP tests/spec
fi
if want conformance && [ -f tests/conformance/run.lua ]; then
    run_suite conformance $LUA tests/conformance/run.lua ../shared/conformance/cases
    # differential checks with fixed seeds (about a second): planner vs naive enumeration on
    # random rules and on the suite's cases, monitors vs analyze of each prefix
    if [ -f tests/conformance/random_diff.lua ]; then
        run_suite conformance-random $LUA tests/conformance/random_diff.lua 1 300
        run_suite conformance-naive $LUA tests/conformance/naive_diff.lua ../shared/conformance/cases 1 2
        run_suite conformance-monitor $LUA tests/conformance/monitor_diff.lua ../shared/conformance/cases 1 2
    fi
fi
if want e2e && [ -d tests/e2e ] && ls tests/e2e/*_spec.lua >/dev/null 2>&1; then
    run_suite e2e $BUSTED -o TAP tests/e2e
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
