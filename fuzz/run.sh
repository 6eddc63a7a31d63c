#!/usr/bin/env bash
# Runs each fuzzer for a while on a copy of its seeds: `fuzz/run.sh BUILD_DIR SECONDS`.
# `make test` runs it briefly; `make fuzz` for ten minutes per target. A crash
# leaves its input in fuzz/crashes/ and fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-fuzz}
seconds=${2:-20}
mkdir -p fuzz/crashes
status=0
for target in fuzz_command fuzz_data fuzz_session fuzz_pipeline fuzz_reply fuzz_dkim fuzz_http fuzz_maildrop; do
  work=$(mktemp -d)
  cp fuzz/seeds/${target#fuzz_}/* "$work"/ 2>/dev/null || true
  if "$build/$target" -max_total_time="$seconds" -max_len=4096 -artifact_prefix=fuzz/crashes/ \
       -print_final_stats=0 "$work" >"$work.log" 2>&1; then
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*\|#[0-9]*.*DONE' "$work.log" | tail -1 || true)
    echo "fuzz: $target ok for ${seconds}s ${runs}"
  else
    echo "fuzz: $target FAILED (input saved in fuzz/crashes/)"; tail -30 "$work.log"; status=1
  fi
  rm -rf "$work" "$work.log"
done
exit $status
