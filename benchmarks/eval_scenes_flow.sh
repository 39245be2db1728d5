#!/usr/bin/env bash
# TCIG with the bundled rectified-flow transformer (scenes-flow) against every baseline with the same refiner, on
# the 100 held-out scenes (the two slow baselines, regional and guided, on the first 30) and on the held-out
# hand-drawn layouts of examples/unusual/test (issue 19). Each step resumes when rerun.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
TITLE="bundled scenes with the flow transformer, 100 held-out scenes"
tcig eval --models scenes-flow --cases scenes:100 --methods tcig,stage1,diffusion,sdedit-layout \
  --out reports/scenes_flow --title "$TITLE" --no-progress
tcig eval --models scenes-flow --cases scenes:30 --methods regional,guided --out reports/scenes_flow \
  --title "$TITLE" --no-progress
tcig eval --models scenes-flow --cases folder:examples/unusual/test --out reports/unusual_test_flow \
  --title "hand-drawn unusual layouts (held out), flow transformer" --no-progress
