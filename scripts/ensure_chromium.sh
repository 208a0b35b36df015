#!/usr/bin/env bash
# The report tests open the HTML report in a real headless browser: Debian's chromium.
# Install it when it is missing and this machine can (root or sudo, apt-get); otherwise say
# so and go on: those tests then skip, the others run.
set -u
for name in chromium chromium-browser google-chrome; do
    if command -v "$name" >/dev/null 2>&1; then
        exit 0
    fi
done
if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure_chromium: no chromium and no apt-get; the browser tests of the report will skip" >&2
    exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
else
    echo "ensure_chromium: no chromium and no root to install it; the browser tests of the report will skip" >&2
    exit 0
fi
echo "ensure_chromium: installing Debian's chromium for the report's browser tests" >&2
export DEBIAN_FRONTEND=noninteractive
if ! { timeout 600 $SUDO apt-get install -y -q chromium >/dev/null 2>&1 \
       || { timeout 300 $SUDO apt-get update -q >/dev/null 2>&1 \
            && timeout 600 $SUDO apt-get install -y -q chromium >/dev/null 2>&1; }; }; then
    echo "ensure_chromium: could not install chromium; the browser tests of the report will skip" >&2
fi
exit 0
