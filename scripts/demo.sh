#!/usr/bin/env bash
# The README's demo: the whole pipeline on a folder of face photos, in a fresh working folder:
# synthesize -> split -> a short train -> eval, then where to look.
# Usage: scripts/demo.sh FACES_DIR DEMO_DIR VENV_DIR [EPOCHS]
set -euo pipefail
faces=$1 demo=$2 venv=$3 epochs=${4:-30}
mf="$venv/bin/maskforge"
real_masked="$(dirname "$faces")/masked_real"
mkdir -p "$demo"
cd "$demo"
step() { printf '\n== %s\n' "$*"; }

step "maskforge synthesize $faces out/"
# Exit code 3 means "finished, some photos had no usable face": expected on real data.
"$mf" synthesize "$faces" out/ --seed 0 --negatives hand,object,scarf --negative-rate 0.15 \
    || [ $? -eq 3 ]
"$mf" preview out/ --sheet preview.png --side-by-side --count 40

step "maskforge split --ratios 0.8,0.1,0.1"
"$mf" split --ratios 0.8,0.1,0.1

# The default recipe (resnet50, 50 epochs, ImageNet weights when downloadable) takes hours on a
# CPU. The demo trains a classifier head on frozen EfficientNet-Lite0 features, whose ImageNet
# weights come with the package (no network needed): a minute or two on a laptop.
step "maskforge train (quick: frozen efficientnet_lite0 at 224 px, $epochs epochs of the head)"
"$mf" train --arch efficientnet_lite0 --freeze-backbone --img-size 224 --epochs "$epochs"

step "maskforge eval (the run's own test manifest)"
"$mf" eval --cam 8

if [ -d "$real_masked" ]; then
    step "maskforge eval on REAL masked photos the model never saw"
    "$mf" eval --folder "$real_masked" --label masked --cam 8
fi

run=$(ls -td runs/*/ | head -1)
cat <<EOT

Done. Look at (in $demo):
  preview.png                     contact sheet: originals next to their synthetic masks
  out/synthesis.csv               what happened to every photo (status, reason, choices)
  manifests/split_report.md       counts per split and class, duplicates found
  ${run}curves.png               training curves; metrics.csv has the numbers
  ${run}eval-*/report.md         metrics with confidence intervals, plots, Grad-CAM
EOT
