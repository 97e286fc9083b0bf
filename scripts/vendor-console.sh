#!/usr/bin/env bash
# Copy the web console's third-party files from node_modules (pinned in package.json) to where
# they are served or used: uPlot into api/console/static/vendor/, axe-core (the browser tests'
# accessibility checker, never served) into tests/console/vendor/. The copies are committed;
# tests/console/test_vendored.py fails when they differ from node_modules.
#   npm ci --no-audit --no-fund && bash scripts/vendor-console.sh
set -euo pipefail
cd "$(dirname "$0")/.."

copy() { # source destination
  [[ -f "$1" ]] || { echo "missing $1: run npm ci first" >&2; exit 1; }
  mkdir -p "$(dirname "$2")"
  cp "$1" "$2"
  echo "$2"
}

copy node_modules/uplot/dist/uPlot.iife.min.js api/console/static/vendor/uPlot.iife.min.js
copy node_modules/uplot/dist/uPlot.min.css api/console/static/vendor/uPlot.min.css
copy node_modules/uplot/LICENSE api/console/static/vendor/uPlot.LICENSE
copy node_modules/axe-core/axe.min.js tests/console/vendor/axe.min.js
copy node_modules/axe-core/LICENSE tests/console/vendor/axe-core.LICENSE
