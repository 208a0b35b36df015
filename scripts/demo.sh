#!/usr/bin/env bash
# The demo: generate the built-in demo region, then prepare it into labelled chips.
set -euo pipefail
out=${1:-demo-out}
bin=${VENV:-.venv}/bin
"$bin/solarmap" demo-data --out "$out/region" --seed 0 --size 1024 --overwrite
"$bin/solarmap" prepare --scene "$out/region/scene.tif" --labels "$out/region/labels.osm" \
    --out "$out/prepared" --overwrite
echo "demo outputs in $out/"
