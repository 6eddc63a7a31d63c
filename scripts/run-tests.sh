#!/usr/bin/env bash
# Runs every test suite of tern after `make build asan fuzz-build` and ends
# with one line "N passed, N failed" over all of them:
#   unit tests (GoogleTest) under AddressSanitizer + UBSan,
#   integration tests (pytest, real clients and peers) against the release
#   binary, and again against the sanitizer build of tern,
#   a short run of each fuzzer.
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=/usr/bin/python3
FUZZ_SECONDS=${FUZZ_SECONDS:-20}
passed=0
failed=0
skipped=0
status=0

count() {  # count SUITE PASSED FAILED EXIT [SKIPPED]
  local suite=$1 p=${2:-0} f=${3:-0} rc=$4 s=${5:-0}
  if [[ $rc -ne 0 && $f -eq 0 ]]; then f=1; fi  # a crash before any count still fails
  passed=$((passed + p))
  failed=$((failed + f))
  skipped=$((skipped + s))
  [[ $rc -eq 0 ]] || status=1
  echo "== $suite: $p passed, $f failed, $s skipped"
}

echo "== unit tests (ASan + UBSan)"
# PostgresSpool.* need a live database: tests/integration/test_postgres_spool.py
# starts one and runs them there (so they are counted with the integration tests).
out=$(build-asan/unit_tests --gtest_brief=1 --gtest_filter=-PostgresSpool.* 2>&1); rc=$?
echo "$out" | tail -5
p=$(echo "$out" | sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' | tail -1)
f=$(echo "$out" | sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' | tail -1)
count unit "$p" "$f" $rc

for binary in build/tern build-asan/tern; do
  echo "== integration tests against $binary"
  out=$(TERN_BINARY=$PWD/$binary $PYTHON -m pytest -q -p no:cacheprovider tests/integration 2>&1); rc=$?
  echo "$out" | tail -15
  p=$(echo "$out" | grep -Eo '[0-9]+ passed' | tail -1 | grep -Eo '[0-9]+')
  f=$(echo "$out" | grep -Eo '[0-9]+ (failed|error)' | awk '{s+=$1} END {print s+0}')
  s=$(echo "$out" | grep -Eo '[0-9]+ skipped' | tail -1 | grep -Eo '[0-9]+')
  count "integration ($binary)" "${p:-0}" "${f:-0}" $rc "${s:-0}"
done

echo "== fuzzers, ${FUZZ_SECONDS}s each"
out=$(./fuzz/run.sh build-fuzz "$FUZZ_SECONDS" 2>&1); rc=$?
echo "$out"
p=$(echo "$out" | grep -c ' ok for ')
f=$(echo "$out" | grep -c 'FAILED')
count fuzz "$p" "$f" $rc

echo
echo "$passed passed, $failed failed, $skipped skipped"
exit $status
