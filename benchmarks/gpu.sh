#!/usr/bin/env bash
# The GPU figures of docs/performance.md: `bash benchmarks/gpu.sh OUT_DIR` on a CUDA machine.
# SD1.5 at 512 with CLIP ViT-B/32 and SegFormer-B0, random weights; each table is written as soon as it is done.
set -uo pipefail
out=${1:?usage: benchmarks/gpu.sh OUT_DIR}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
bench() { local name=$1 limit=$2; shift 2; timeout "$limit" python3 -m tcig bench --device cuda "$@" \
  --out "$out/$name.json" 2>&1 | grep -v "should be kept in float32\|torchvision" | tee "$out/$name.log"; }
bench sd15_main_levers 280 --arch sd15 --tables main,levers --compile reduce-overhead --repeats 2 --warmup 1
bench sd15_scaling 160 --arch sd15 --tables scaling --repeats 1 --warmup 1
bench sdxl_main 80 --arch sdxl --clip clip-vit-l14 --segmenters segformer-b5 --tables main --repeats 1 --warmup 1
