#!/usr/bin/env bash
# The README's demo: the whole pipeline on a folder of face photos, in a fresh working folder.
# Usage: scripts/demo.sh FACES_DIR DEMO_DIR VENV_DIR
set -euo pipefail
faces=$1 demo=$2 venv=$3
mf="$venv/bin/maskforge"
mkdir -p "$demo"
cd "$demo"
echo "== maskforge synthesize $faces out/"
"$mf" synthesize "$faces" out/ --seed 0
echo
echo "Done. Look at:"
echo "  $demo/out/masked/, $demo/out/unmasked/   paired face images"
echo "  $demo/out/synthesis.csv                   what happened to every input"
