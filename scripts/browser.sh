#!/usr/bin/env bash
# scripts/browser.sh: make sure the browser end-to-end test (e2e/browser_test.go)
# has what it runs: node and npm, Debian's chromium at /usr/bin/chromium, and
# e2e/browser/node_modules (playwright-core at the version package-lock.json pins).
#
# Installs only what is missing (apt-get update runs only when apt-get must
# install something), so it is cheap when everything is there. The browser is
# Debian's package: playwright's own browser download is never used.
# Failing to install is a hard error with the reason: under CI=true the test
# fails rather than skips without them.
set -euo pipefail
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
export DEBIAN_FRONTEND=noninteractive

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CHROMIUM=/usr/bin/chromium
NODE_DIR=$ROOT/e2e/browser

say() { printf 'browser: %s\n' "$*" >&2; }
fail() {
    printf 'browser: ERROR: %s\n' "$*" >&2
    exit 1
}

APT_UPDATED=0
apt_install() {
    [[ $(id -u) == 0 ]] || fail "$* not installed and not root: install them (apt-get install -y $*) and rerun"
    command -v apt-get >/dev/null || fail "$* not installed and no apt-get: install them by hand"
    if ((!APT_UPDATED)); then
        say "apt-get update"
        apt-get update -q >&2 || fail "apt-get update failed"
        APT_UPDATED=1
    fi
    say "apt-get install -y $*"
    apt-get install -y -q --no-install-recommends "$@" >&2 || fail "apt-get install -y $* failed"
}

missing=()
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
# fonts-liberation: a recommended package of chromium that --no-install-recommends
# leaves out; without a font the screenshot shows boxes for text.
[[ -x $CHROMIUM ]] || missing+=(chromium fonts-liberation)
if ((${#missing[@]})); then
    apt_install "${missing[@]}"
fi
[[ -x $CHROMIUM ]] || fail "$CHROMIUM still missing after installing chromium"

# playwright-core 1.65 needs node 20 or later.
major=$(node -p 'process.versions.node.split(".")[0]')
((major >= 20)) || fail "node $(node --version) is too old for playwright-core: need 20 or later"

# installed_matches_lock: node_modules holds the playwright-core that package-lock.json pins.
installed_matches_lock() {
    (cd "$NODE_DIR" && node -e '
        const want = require("./package-lock.json").packages["node_modules/playwright-core"].version;
        const got = require("./node_modules/playwright-core/package.json").version;
        process.exit(got === want ? 0 : 1);' 2>/dev/null)
}
command -v npm >/dev/null || fail "npm missing after installing it"
if ! installed_matches_lock; then
    say "npm ci in e2e/browser"
    (cd "$NODE_DIR" && npm ci --no-audit --no-fund >&2) || fail "npm ci in $NODE_DIR failed"
fi
say "ok: node $(node --version), $("$CHROMIUM" --version 2>/dev/null || echo chromium), playwright-core $(node -p "require('$NODE_DIR/node_modules/playwright-core/package.json').version")"
