#!/usr/bin/env bash
# Builds the web storefront and admin console (web/ -> web/dist), only when it is missing or
# older than its sources. `npm ci` installs exactly web/package-lock.json, and is skipped when
# node_modules was installed from that same lock. Used by `make web`, `make run` and the
# browser tests.
set -euo pipefail
cd "$(dirname "$0")/../web"

if ! command -v npm >/dev/null; then
    echo "npm is missing: install Node.js 20 or later (apt-get install nodejs npm) and run make web again" >&2
    exit 1
fi

# Vite 7 needs Node.js 20.19 or later (Debian 12's own nodejs is 18).
if (( $(node -p 'process.versions.node.split(".")[0]') < 20 )); then
    echo "Node.js $(node --version) is too old to build web/: install Node.js 20 or later" >&2
    exit 1
fi

lock_digest=$(sha256sum package-lock.json | cut -d' ' -f1)
installed=node_modules/.conveyor-lock-sha256
if [[ ! -f $installed || $(cat "$installed") != "$lock_digest" ]]; then
    npm ci --no-audit --no-fund
    echo "$lock_digest" > "$installed"
fi

# Stale: any source, config or the lock newer than the built index.html.
if [[ -f dist/index.html ]] && [[ -z $(find src index.html package-lock.json ./*.config.* tsconfig.json \
        -newer dist/index.html -print -quit) ]]; then
    exit 0
fi
npm run build --silent
