#!/usr/bin/env bash
# The GPU figures of docs/performance.md: `bash benchmarks/gpu.sh OUT_DIR` on a CUDA machine (about 9 minutes on an
# H100 or H200). Real-size architectures with random weights; each table is written as soon as it is done.
#   1. the sd15 set's defaults against SD1.5 + ControlNet in the same run, the stage-1 profile, 1 and 4 images a call;
#   2. the FLUX.1-schnell and SD3.5 sets' defaults against their own plain img2img (and SD1.5 + ControlNet);
#   3. peak GPU memory of each (in every JSON file).
set -uo pipefail
out=${1:?usage: benchmarks/gpu.sh OUT_DIR}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
bench() { local name=$1 limit=$2; shift 2; timeout "$limit" python3 -m tcig bench --device cuda "$@" \
  --out "$out/$name.json" 2>&1 | grep -v "should be kept in float32\|torchvision" | tee "$out/$name.log"; }
bench sd15_main 150 --arch sd15 --tables main,profile --repeats 2 --warmup 1
bench sd15_batch 120 --arch sd15 --tables scaling --resolutions 512 --segmenter-counts "" --batches 1,4 \
  --repeats 1 --warmup 1
bench sd15_levers 150 --arch sd15 --tables levers --levers guides-per-step,init-steps,start-cache,compile \
  --compile reduce-overhead --repeats 1 --warmup 1
bench flux_schnell_main 120 --arch flux-schnell --tables main --repeats 1 --warmup 1
bench sd35_main 120 --arch sd35 --tables main --repeats 1 --warmup 1
