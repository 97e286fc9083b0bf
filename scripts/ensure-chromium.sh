#!/usr/bin/env bash
# Debian's Chromium renders the evaluation report and drives the console's browser tests, and a
# CJK font lets it draw the Chinese pages; install what is missing (nothing to do otherwise).
set -euo pipefail
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
if command -v fc-list >/dev/null 2>&1; then
  fc-list :lang=zh 2>/dev/null | grep -q . || need+=(fonts-wqy-microhei)
else
  [ -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || need+=(fonts-wqy-microhei)
fi
[ "${#need[@]}" -eq 0 ] && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get install -y --no-install-recommends "${need[@]}" \
  || { $SUDO apt-get update && $SUDO apt-get install -y --no-install-recommends "${need[@]}"; }
