#!/bin/sh
# Builds the libFuzzer targets on the stable toolchain and runs each one for
# FUZZ_SECONDS (default 300), one after the other, seeded from seeds/<target>
# (and cni-conf/ for conf). The growing corpus lives in corpus/<target>,
# crashes in artifacts/. The harness (libfuzzer/) is its own workspace, so the
# instrumented build never touches the main one; the target bodies
# (targets/) are a crate of the main workspace, run by `make test` too. Exits non-zero on the first finding.
#
#   fuzz/run.sh [target...]        FUZZ_SECONDS=60 fuzz/run.sh conf
set -eu
cd "$(dirname "$0")"
CARGO=${CARGO:-cargo}
SECONDS_EACH=${FUZZ_SECONDS:-300}
TARGETS=${*:-conf cni_args result store}
TRIPLE=$(rustc -vV | sed -n 's/^host: //p')
# Coverage instrumentation as cargo-fuzz sets it, with stable flags only;
# no sanitizer (that needs nightly): panics, failed assertions and the RSS
# limit are what a finding is.
RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing"
export RUSTFLAGS
"$CARGO" build --release --target "$TRIPLE" --manifest-path libfuzzer/Cargo.toml
mkdir -p artifacts
summary=""
for t in $TARGETS; do
    mkdir -p "corpus/$t"
    extra=""
    [ "$t" = conf ] && extra="../cni-conf"
    log="artifacts/$t.log"
    echo "== fuzzing $t for ${SECONDS_EACH}s (log: fuzz/$log)"
    status=0
    # -rss_limit_mb: an input that makes memory grow without bound is a
    # finding; -timeout: so is one that hangs.
    "libfuzzer/target/$TRIPLE/release/$t" -max_total_time="$SECONDS_EACH" -rss_limit_mb=1024 -timeout=10 \
        -print_final_stats=1 -artifact_prefix="artifacts/$t-" "corpus/$t" "seeds/$t" $extra >"$log" 2>&1 || status=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
    if [ "$status" -ne 0 ]; then
        tail -40 "$log"
        echo "== $t: FINDING after ${execs:-?} execs (exit $status); the input is in fuzz/artifacts/"
        exit 1
    fi
    line="$t: ${execs} execs (${rate}/s), corpus $(ls "corpus/$t" | wc -l) inputs, no finding"
    echo "== $line"
    summary="$summary
$line"
done
echo "== fuzz summary (${SECONDS_EACH}s each):$summary"
