#!/usr/bin/env bash
# Tuning of scenes-flow's stage 2 (issue 19) on the tuning cases only: 6 rendered tuning scenes (seeds 9,500,000+)
# and the 8 hand-drawn layouts of examples/unusual/tune, never the held-out scenes or examples/unusual/test.
# Stage 1 is scenes.json's (tuned for the latent UNet in docs/tuning.md); the rounds vary what the flow refiner
# changes: the noise level of the first refinement (round 1: 0.35 / 0.45 / 0.55; round 2, as lower was better:
# 0.25 / 0.30). Results: reports/tune_flow_r*/summary.md, docs/tuning.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
CASES=(--cases scenes:6:9500000 --cases folder:examples/unusual/tune --no-progress)
ROUNDS=${ROUNDS:-"1 2"}

for round in $ROUNDS; do
  case $round in
    1) variants=(--variant nl35:noise_level=0.35 --variant nl45:noise_level=0.45 --variant nl55:noise_level=0.55) ;;
    2) variants=(--variant nl25:noise_level=0.25 --variant nl30:noise_level=0.3) ;;
  esac
  tcig eval --models scenes-flow "${CASES[@]}" --methods tcig "${variants[@]}" --out "reports/tune_flow_r$round" \
    --title "scenes-flow tuning round $round"
done
