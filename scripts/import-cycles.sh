#!/bin/sh
# Print any import cycle between the source files of each crate (or of the
# crates named as arguments); exit 1 when there is one. Each file is a node:
# `use super::X` from a/b.rs is an edge to a.rs, `pub use b::X` in a.rs an
# edge to a/b.rs. Binaries under src/bin/ and test modules are left out.
# docs/architecture.md, "Checking the import graph", gives the rule.
set -eu
cd "$(dirname "$0")/.."
found=0
for crate in ${*:-net proxy certs benches tests lb-sim}; do
    echo "== $crate"
    loops=$(find "$crate/src" -name '*.rs' ! -path '*/bin/*' ! -name tests.rs | sort |
        xargs awk -v src="$crate/src/" -f scripts/import-edges.awk | sort -u |
        tsort 2>&1 >/dev/null | sed -E 's/^tsort: ?(-: )?/  /') || true
    if [ -n "$loops" ]; then
        printf '%s\n' "$loops"
        found=1
    fi
done
exit "$found"
