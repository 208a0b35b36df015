#!/usr/bin/env bash
# The demo: generate a training region and an unseen region, prepare, train, predict, evaluate.
set -euo pipefail
out=${1:-demo-out}
bin=${VENV:-.venv}/bin
"$bin/solarmap" demo --out "$out" --overwrite
