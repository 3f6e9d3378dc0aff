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
    if ! "$GO" test -run='^$' -fuzz="^$name\$" -fuzztime="$fuzztime" "$pkg"; then
        failed+=("$pkg $name")
    fi
done
if ((${#failed[@]})); then
    printf 'fuzz: FAILED: %s\n' "${failed[@]}" >&2
    exit 1
fi
