#!/usr/bin/env bash
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET]   (make fuzz; default 600)
# Coverage-guided fuzzing (libFuzzer via cargo-fuzz) of the pure parsers in tenancy-core: the
# JWT parser/verifier/claims, and the carrier decoder, claim paths and API key parser. Runs on
# the stable toolchain with RUSTC_BOOTSTRAP=1 (cargo-fuzz needs -Z flags). Findings land in
# fuzz/artifacts/; keep each as a unit test in tenancy-core once fixed. Not part of make test.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs="${1:-600}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
for target in jwt carrier_and_claims; do
    echo "==> fuzz: $target for ${secs}s"
    mkdir -p "corpus/$target.run"
    cp -n corpus/"$target"/* "corpus/$target.run/" 2>/dev/null || true
    cargo fuzz run "$target" "corpus/$target.run" -- -max_total_time="$secs" -max_len=16384 -rss_limit_mb=2048 2>&1 |
        grep -E '^(#[0-9]+\s+DONE|Done|==[0-9]+==|SUMMARY|artifact_prefix|Test unit written)' || true
    if ls artifacts/"$target"/crash-* artifacts/"$target"/oom-* artifacts/"$target"/timeout-* >/dev/null 2>&1; then
        echo "*** fuzz: $target found failures in fuzz/artifacts/$target" >&2
        exit 1
    fi
done
echo "==> fuzz: no findings"
