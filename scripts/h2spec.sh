#!/usr/bin/env bash
# scripts/h2spec.sh [--path]: make sure h2spec (github.com/summerwind/h2spec, the
# HTTP/2 conformance tester that e2e/h2spec_test.go runs) is installed at the
# pinned version, and print the binary's path on stdout.
#
#   --path   print the path only, installing nothing (the Makefile uses it to
#            export FULCRUM_TEST_H2SPEC)
#
# The binary goes to a directory of its own version under the user's cache
# (~/.cache/fulcrum/h2spec/VERSION, or $H2SPEC_DIR), so a newer h2spec
# someone keeps in GOPATH/bin is never replaced. Idempotent and cheap when the
# binary is there: its version is read from its Go build information.
#
# Why this version: v2.2.1+incompatible is the newest the Go module proxy
# offers (`go list -m -versions github.com/summerwind/h2spec` lists v1.5.0 and
# v2.2.1+incompatible; later tags and commits are refused). It has no go.mod
# of its own, so `go install` resolves its few dependencies (cobra,
# fatih/color, x/net) at their newest versions when it first installs.
# Failing to install is a hard error with the reason: the test fails rather
# than skips without h2spec.
set -euo pipefail

VERSION=v2.2.1+incompatible
MODULE=github.com/summerwind/h2spec
GO=${GO:-go}

fail() {
    printf 'h2spec: ERROR: %s\n' "$*" >&2
    exit 1
}

dir=${H2SPEC_DIR:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/fulcrum/h2spec/$VERSION}
bin=$dir/h2spec
if [[ ${1:-} == --path ]]; then
    echo "$bin"
    exit 0
fi
[[ $# == 0 ]] || fail "usage: $0 [--path]"

# installed: bin is h2spec built from MODULE at VERSION.
installed() {
    [[ -x $bin ]] && "$GO" version -m "$bin" 2>/dev/null | grep -Eq "^[[:space:]]+mod[[:space:]]+$MODULE[[:space:]]+${VERSION//+/\\+}([[:space:]]|$)"
}

if ! installed; then
    command -v "$GO" >/dev/null || fail "$GO not found on PATH"
    mkdir -p "$dir" || fail "cannot create $dir"
    printf 'h2spec: go install %s/cmd/h2spec@%s into %s\n' "$MODULE" "$VERSION" "$dir" >&2
    # Outside any module, so the repository's go.mod plays no part.
    (cd "$dir" && GOBIN=$dir "$GO" install "$MODULE/cmd/h2spec@$VERSION" >&2) ||
        fail "go install $MODULE/cmd/h2spec@$VERSION failed (see above; it needs the Go module proxy)"
    installed || fail "$bin is not h2spec $VERSION after installing it"
fi
printf 'h2spec: ok: %s (%s)\n' "$bin" "$VERSION" >&2
echo "$bin"
