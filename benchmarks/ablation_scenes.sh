#!/usr/bin/env bash
# The ablation of issue 11: each new component of the scenes defaults switched off in turn, and the previous
# defaults, on the first 12 held-out scenes and the 8 held-out hand-drawn layouts (reports/ablation/summary.md).
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
OLD="init=noise,seg_views=1,seg_shift=0,seg_scale=0,seg_blur=0,tv_weight=0,weights=1/0/0,steps=100,num_crops=8"
OLD="$OLD,strength=0.25,cycles=0"
tcig eval --models scenes --cases scenes:12 --cases folder:examples/unusual/test --methods tcig,stage1 \
  --variant defaults: --variant no-init:init=noise --variant no-views:seg_shift=0,seg_scale=0,seg_blur=0 \
  --variant no-tv:tv_weight=0 --variant single-guide:weights=1/0/0 --variant no-cycle:cycles=0 \
  --variant previous-defaults:$OLD --out reports/ablation --no-progress --title "ablation: each component off"
