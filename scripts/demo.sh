#!/usr/bin/env bash
# The README's demo: the whole pipeline on a folder of face photos, in a fresh working folder:
# synthesize -> preview -> split -> a short train -> eval, then where to look.
# Usage: scripts/demo.sh FACES_DIR DEMO_DIR VENV_DIR [REAL_MASKED_DIR] [EPOCHS]
set -euo pipefail
faces=$1 demo=$2 venv=$3 real_masked=${4:-} epochs=${5:-30}
mf="$venv/bin/maskforge"
n_photos=$(find "$faces" -type f \( -iname '*.jpg' -o -iname '*.jpeg' -o -iname '*.png' \) | wc -l)
mkdir -p "$demo"
cd "$demo"
step() { printf '\n== %s\n' "$*"; }

# A few dozen photos (the shipped portraits) give val and test splits of a handful of faces
# each: wider val/test shares and more hard negatives keep both classes in every split.
if [ "$n_photos" -lt 200 ]; then
    ratios=0.6,0.2,0.2 negative_rate=0.3 small=1
else
    ratios=0.8,0.1,0.1 negative_rate=0.15 small=0
fi

step "maskforge synthesize $faces out/   ($n_photos photos)"
# Exit code 3 means "finished, some photos had no usable face": expected on real data.
"$mf" synthesize "$faces" out/ --seed 0 --negatives hand,object,scarf \
    --negative-rate "$negative_rate" || [ $? -eq 3 ]
"$mf" preview out/ --sheet preview.png --side-by-side --count 40

step "maskforge split --ratios $ratios"
"$mf" split --ratios "$ratios"

# The default recipe (resnet50, 50 epochs, ImageNet weights when downloadable) takes hours on a
# CPU. The demo trains a classifier head on frozen EfficientNet-Lite0 features, whose ImageNet
# weights come with the package (no network needed): a minute or two on a laptop.
step "maskforge train (quick: frozen efficientnet_lite0 at 224 px, $epochs epochs of the head)"
"$mf" train --arch efficientnet_lite0 --freeze-backbone --img-size 224 --epochs "$epochs"

step "maskforge eval (the run's own test manifest)"
"$mf" eval --cam 8

if [ -n "$real_masked" ] && [ -d "$real_masked" ]; then
    step "maskforge eval on REAL masked photos the model never saw ($real_masked)"
    "$mf" eval --folder "$real_masked" --label masked --cam 8
    real_note="  eval-$(basename "$real_masked")/ in the run folder: how many REAL masked photos it recognises"
else
    real_note="  No real masked photos were given. To see how the model does on REAL masked faces
  (the number that matters), point it at a folder of your own:
      cd $demo && $mf eval --folder path/to/masked_photos --label masked"
fi

run=$(ls -td runs/*/ | head -1)
cat <<EOT

Done. Look at (in $demo):
  preview.png                 contact sheet: originals next to their synthetic masks
  out/synthesis.csv           what happened to every photo (status, reason, choices)
  manifests/split_report.md   counts per split and class, duplicates found
  the run folder $run
    curves.png                training curves; metrics.csv has the numbers
    eval-test/report.md       metrics with confidence intervals, plots, Grad-CAM
$real_note
EOT
if [ "$small" -eq 1 ]; then
    cat <<EOT

What to expect from $n_photos photos: the test split holds only a handful of faces, so its
accuracy moves by several points from one seed to another (report.md gives the confidence
intervals), and a model trained on so few faces is a smoke test of the pipeline, not a
classifier to use. For a real dataset run it on a few thousand photos of your own:
  make demo FACES=path/to/photos      (or: make demo-large, on ../shared/faces when present)
EOT
fi
