#!/usr/bin/env bash
# Label noise (docs/paper-notes.md §4: "a 50% coreset of label-noise-corrupted data beats training on the full
# data"): digits with 40% symmetric label noise, 2 seeds: full, full-aug, and regime (b) with a 50%
# coreset vs a 50% random subset. The report prints accuracy and the speed-up vs full-aug (same run).
#   bash benchmarks/bench_label_noise_digits.sh [RUNS_DIR]      (~3 min on 2 CPU cores)
set -euo pipefail
runs=${1:-runs/label_noise_digits}
here=$(cd "$(dirname "$0")" && pwd)
common=(--dataset digits --model mlp --epochs 15 --milestones 11 --lr 0.05 --batch-size 32 --weak-aug none
        --strong-aug autoaugment --reselect-every 5 --label-noise 0.4 --device cpu --threads 1 --quiet)
for seed in 0 1; do
  coreaug train "${common[@]}" --seed "$seed" --method full --out "$runs/full_s$seed"
  coreaug train "${common[@]}" --seed "$seed" --method full-aug --out "$runs/full-aug_s$seed"
  coreaug train "${common[@]}" --seed "$seed" --method subset-only --selector coreset --fraction 0.5 --out "$runs/coreset50_s$seed"
  coreaug train "${common[@]}" --seed "$seed" --method subset-only --selector random --fraction 0.5 --out "$runs/random50_s$seed"
done
coreaug report "$runs" --out "$runs/report"
cp "$runs/report/summary.md" "$here/results/label_noise_digits.md"
cat "$here/results/label_noise_digits.md"
