#!/usr/bin/env bash
# What tests/test_browser.py needs: Chromium and node from Debian (only those missing), then playwright-core
# at the version pinned in package.json. Safe to rerun: it installs nothing that is already there.
set -euo pipefail
cd "$(dirname "$0")"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
    echo "browser: apt-get install ${missing[*]}"
    $sudo apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# npm ci wipes node_modules and needs the registry, so skip it when the pinned version is already in place.
pinned_ok='const want = require("./package.json").dependencies["playwright-core"];
process.exit(require("./node_modules/playwright-core/package.json").version === want ? 0 : 1);'
if ! node -e "$pinned_ok" 2>/dev/null; then
    npm ci --no-audit --no-fund
fi
echo "browser: $(/usr/bin/chromium --version 2>/dev/null), node $(node --version)," \
     "playwright-core $(node -p 'require("./node_modules/playwright-core/package.json").version')"
