#!/usr/bin/env bash
# Coverage-guided fuzzing of passthru's network-input parsers: builds the
# cargo-fuzz targets (installing cargo-fuzz if missing) and runs each for
# FUZZ_SECONDS, one after another, on one core. `make fuzz` calls this.
#
#   fuzz/run.sh [SECONDS] [TARGET...]     (default: 60 s, every target)
#
# Stable Rust only: cargo-fuzz passes `-Zsanitizer=address`, which stable
# rustc accepts with RUSTC_BOOTSTRAP=1 (the ASan runtime ships with the
# stable toolchain). Debug assertions are on, so an arithmetic overflow is a
# crash too. Each target reads its seeds (below) and fuzz/regressions/TARGET,
# and grows fuzz/corpus/TARGET (not committed). A crash is saved under
# fuzz/artifacts/TARGET/; the run goes on with the other targets and exits 1
# at the end. Minimise one with:
#   RUSTC_BOOTSTRAP=1 cargo fuzz tmin -a TARGET fuzz/artifacts/TARGET/crash-…
set -euo pipefail

cd "$(dirname "$0")/.."
root=$PWD
seconds=${1:-${FUZZ_SECONDS:-60}}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(clienthello proxy_protocol connect_response connect_request admin_request offload_headers)
fi

# Seed inputs of each target, besides fuzz/regressions/TARGET.
seeds() {
    case $1 in
    clienthello) echo "proxy/src/clienthello/testdata" ;;
    proxy_protocol) echo "fuzz/seeds/proxy_protocol proxy/src/proxy_protocol/testdata" ;;
    *) echo "fuzz/seeds/$1" ;;
    esac
}
dict() {
    case $1 in
    proxy_protocol) echo "-dict=$root/fuzz/dict/proxy_protocol.dict" ;;
    connect_response | connect_request | admin_request | offload_headers) echo "-dict=$root/fuzz/dict/http.dict" ;;
    esac
}

cargo=${CARGO:-cargo}
export RUSTC_BOOTSTRAP=1
if ! command -v c++ >/dev/null 2>&1; then
    echo "fuzz: libFuzzer is C++ and needs a C++ compiler: apt-get install g++" >&2
    exit 2
fi
if ! "$cargo" fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz"
    "$cargo" install --locked cargo-fuzz
fi
"$cargo" fuzz build --debug-assertions

summary=()
failed=()
for target in "${targets[@]}"; do
    corpus=$root/fuzz/corpus/$target
    mkdir -p "$corpus" "$root/fuzz/regressions/$target" "$root/fuzz/artifacts/$target"
    dirs=("$corpus" "$root/fuzz/regressions/$target")
    for dir in $(seeds "$target"); do dirs+=("$root/$dir"); done
    log=$root/fuzz/artifacts/$target/last-run.log
    echo "fuzz: $target for ${seconds}s (log: ${log#"$root"/})"
    status=0
    # shellcheck disable=SC2046 # dict() is one word or none
    "$cargo" fuzz run --debug-assertions "$target" "${dirs[@]}" -- \
        -max_total_time="$seconds" -print_final_stats=1 \
        -artifact_prefix="$root/fuzz/artifacts/$target/" $(dict "$target") \
        >"$log" 2>&1 || status=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    size=$(sed -n 's/.*DONE .* corp: \([0-9]*\)\/.*/\1/p' "$log" | tail -1)
    if [ "$status" -ne 0 ]; then
        failed+=("$target")
        grep -m1 -A30 -E "panicked|ERROR: (libFuzzer|AddressSanitizer)" "$log" || tail -40 "$log"
    fi
    summary+=("$(printf '%-18s %14s runs %10s exec/s %6s corpus  %s' "$target" "${runs:-?}" "${rate:-?}" "${size:-?}" \
        "$([ "$status" -eq 0 ] && echo ok || echo "CRASH (exit $status)")")")
done

echo
echo "fuzz: ${seconds}s per target"
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -ne 0 ]; then
    echo "fuzz: crashes in: ${failed[*]} (inputs under fuzz/artifacts/)" >&2
    exit 1
fi
