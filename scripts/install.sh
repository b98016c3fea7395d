#!/usr/bin/env bash
# Installs what Conveyor needs on a fresh machine and does nothing when it is all there:
# uv, the locked Python dependencies, Java 17+ and Maven (for Kafka's jars), Prometheus.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1minstall:\033[0m %s\n' "$*" >&2; }

if ! command -v uv >/dev/null 2>&1; then
  say "uv not found; installing it from PyPI"
  python3 -m pip install --quiet --user uv || python3 -m pip install --quiet uv
  export PATH="$HOME/.local/bin:$PATH"
fi

need_apt=()
command -v java >/dev/null 2>&1 || need_apt+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || need_apt+=(maven)
# promtool, for the alert rules' unit tests (and Prometheus, for the dashboards' checks).
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
# Node.js and npm build the web storefront (`make web`); Debian's Chromium runs its browser
# tests (Playwright drives it by path: no browser is downloaded).
command -v npm >/dev/null 2>&1 || need_apt+=(nodejs npm)
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
if ((${#need_apt[@]})); then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing ${need_apt[*]} with apt-get"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
  else
    say "missing ${need_apt[*]}: install them (as root: apt-get install ${need_apt[*]}) and run 'make install' again"
    exit 1
  fi
fi

stamp=.venv/.conveyor-installed
if [ ! -f "$stamp" ] || [ uv.lock -nt "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  say "syncing the Python environment from uv.lock"
  # --locked: a uv.lock out of step with pyproject.toml fails here rather than being rewritten.
  uv sync --locked --all-extras
  touch "$stamp"
fi
