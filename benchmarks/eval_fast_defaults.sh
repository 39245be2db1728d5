#!/usr/bin/env bash
# Issue 20's quality check: the scenes set's new (fast) defaults beside its defaults of before, in one evaluation on
# the held-out cases (100 rendered scenes of seeds 9,000,000+ and the hand-drawn layouts of examples/unusual/test).
# About 20 minutes on 2 CPU cores; resumable.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
OLD="steps=30,init_steps=30,guides_per_step=0"
tcig eval --models scenes --cases scenes:100 --methods tcig --variant previous:$OLD --variant new: --no-progress \
  --out reports/fast_scenes --title "fast defaults against the previous ones, 100 held-out scenes"
tcig eval --models scenes --cases folder:examples/unusual/test --methods tcig --variant previous:$OLD --variant new: \
  --no-progress --out reports/fast_unusual --title "fast defaults against the previous ones, hand-drawn test layouts"
