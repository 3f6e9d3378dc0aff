#!/usr/bin/env bash
# scripts/fuzz.sh FUZZTIME: run every Go fuzz target in the module for FUZZTIME each.
#
# Targets are found by grepping *_test.go files for "func FuzzX(", so a new fuzz
# test is picked up without touching this script. Go can fuzz only one target
# per package per run, hence one `go test -fuzz` per target.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
fuzztime=${1:-5s}
GO=${GO:-go}

mapfile -t targets < <(
    grep -rE --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*\(' . 2>/dev/null |
        grep -vE '^\./(vendor|\.git)/|/testdata/' |
        sed -E 's|^\./||; s|^(.*)/[^/]*_test\.go:func (Fuzz[A-Za-z0-9_]*)\(.*|\1 \2|; s|^[^/ ]*_test\.go:func (Fuzz[A-Za-z0-9_]*)\(.*|. \1|' |
        sort -u
)
if ((${#targets[@]} == 0)); then
    echo "fuzz: no Fuzz targets found"
    exit 0
fi
echo "fuzz: ${#targets[@]} target(s), $fuzztime each"
failed=()
for t in "${targets[@]}"; do
    dir=${t% *}
    name=${t#* }
    pkg=./$dir
    [[ $dir == . ]] && pkg=.
    echo "fuzz: $GO test -run='^\$' -fuzz='^$name\$' -fuzztime=$fuzztime $pkg"
    log=$(mktemp)
    if ! "$GO" test -run='^$' -fuzz="^$name\$" -fuzztime="$fuzztime" "$pkg" 2>&1 | tee "$log"; then
        # Go's fuzzing engine can end a short run with a bare "context
        # deadline exceeded" and no failing input (a known engine race on a
        # busy machine). That is no finding: run the target once more.
        # Anything with a failing input fails at once.
        if grep -q 'context deadline exceeded' "$log" && ! grep -q 'Failing input written' "$log"; then
            echo "fuzz: $name: engine timeout without a failing input; running it again"
            "$GO" test -run='^$' -fuzz="^$name\$" -fuzztime="$fuzztime" "$pkg" || failed+=("$pkg $name")
        else
            failed+=("$pkg $name")
        fi
    fi
    rm -f "$log"
done
if ((${#failed[@]})); then
    printf 'fuzz: FAILED: %s\n' "${failed[@]}" >&2
    exit 1
fi
