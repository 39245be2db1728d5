#!/usr/bin/env bash
# The speed/quality frontier of the bundled scenes set (issue 20): TCIG's variants along the settings that trade
# time for control, and the baselines, in one `tcig eval` run on the tuning cases only (12 rendered scenes of seeds
# 9,500,000+ and the 8 hand-drawn layouts of examples/unusual/tune), then the plot. About 20 minutes on 2 CPU cores;
# resumable. The variants spell out every setting they change from the set's defaults of before this issue
# (30 stage-1 steps, start images in 30 steps, all three guides at every step, one 10-step polish cycle).
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
out=${OUT:-reports/frontier_scenes}
OLD="steps=30,init_steps=30,guides_per_step=0,cycle_steps=10"
NEW="init_steps=5,steps=20,cycle_steps=10"
tcig eval --models scenes --cases scenes:12:9500000 --cases folder:examples/unusual/tune --no-progress \
  --methods tcig,sdedit-layout,diffusion --title "speed against control, bundled scenes, tuning cases" --out "$out" \
  --variant previous:$OLD \
  --variant s40:$NEW,steps=40 --variant views2:$NEW,steps=30,seg_views=2 \
  --variant s20:$NEW --variant g2s20:$NEW,guides_per_step=2 --variant g2s20cs5:$NEW,guides_per_step=2,cycle_steps=5 \
  --variant g2s15:$NEW,steps=15,guides_per_step=2 --variant s10:$NEW,steps=10 \
  --variant g1s20:$NEW,guides_per_step=1 --variant cyc0:$NEW,cycles=0 --variant px48:$NEW,stage1_size=48
python benchmarks/frontier.py "$out" --out docs/performance/frontier_scenes.png --default g2s20 --paired previous \
  --title "bundled scenes, 20 tuning cases, 2 CPU cores: evaluator mIoU against seconds per image"
# The same fast stage 1 on the flow-transformer set, against its own defaults, on the same tuning cases.
tcig eval --models scenes-flow --cases scenes:12:9500000 --cases folder:examples/unusual/tune --no-progress \
  --methods tcig --variant previous:steps=30,init_steps=30,guides_per_step=0 \
  --variant new:steps=20,init_steps=5,guides_per_step=2 --out "${out}_flow" --title "fast defaults on scenes-flow"
