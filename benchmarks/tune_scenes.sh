#!/usr/bin/env bash
# The tuning runs behind the scenes sets' defaults (issue 11), in the order they were made: each round compares
# variants with `tcig eval --variant` on the tuning cases only -- 6 rendered tuning scenes (seeds 9,500,000+, apart
# from the held-out 9,000,000-9,000,099) and the 8 hand-drawn layouts of examples/unusual/tune -- never on the
# held-out scenes or examples/unusual/test. Results: docs/tuning.md. Each round takes 15-25 minutes on 2 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
CASES=(--cases scenes:6:9500000 --cases folder:examples/unusual/tune --stage1-steps 50 --no-progress)
VIEWS="seg_views=2,seg_shift=0.06,seg_scale=0.15,seg_blur=1"
ROUNDS=${ROUNDS:-"2 3 4 5 6"}

for round in $ROUNDS; do
  case $round in
    2) variants=(--variant colours:init=colours,weights=1/0/0 --variant views:init=colours,$VIEWS,weights=1/0/0
                 --variant tv:init=colours,tv_weight=0.1,weights=1/0/0
                 --variant views-tv:init=colours,$VIEWS,tv_weight=0.1,weights=1/0/0) ;;
    3) variants=(--variant noise:init=noise,weights=1/0/0 --variant collage:init=collage,weights=1/0/0
                 --variant prompt:init=prompt,weights=1/0/0) ;;
    4) B="init=colours,$VIEWS,weights=1/0/0,init_noise=0.1"
       variants=(--variant n01:$B --variant n01-tv1:$B,tv_weight=1 --variant n01-tv3:$B,tv_weight=3
                 --variant n01-f1:$B,pyramid_finest=1) ;;
    5) B="init=colours,$VIEWS,init_noise=0.1"
       variants=(--variant w110:$B,weights=1/1/0 --variant w101:$B,weights=1/0/1 --variant w111:$B,weights=1/1/1
                 --variant w112:$B,weights=1/1/2) ;;
    6) B="init=colours,$VIEWS,init_noise=0.1,weights=1/1/1"
       variants=(--strengths 0.15,0.25,0.35 --variant g0:$B --variant g30:$B,seg_guidance=30
                 --variant g100:$B,seg_guidance=100 --variant cyc1:$B,cycles=1,cycle_steps=15) ;;
  esac
  methods=tcig,stage1; [ "$round" = 6 ] && methods=tcig
  tcig eval --models scenes "${CASES[@]}" --methods $methods "${variants[@]}" --out "reports/tune_r$round" \
    --title "tuning round $round"
done
