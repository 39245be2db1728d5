#!/usr/bin/env bash
# Tuning the training-free baselines' own settings (issue 21) on the tuning cases only: 12 rendered tuning scenes
# (seeds 9,500,000+) and the 8 hand-drawn layouts of examples/unusual/tune. One report folder per setting under
# reports/tune_baselines/ (a baseline's settings apply to the whole run; rerun to resume). Results: docs/baselines.md.
# Usage: benchmarks/tune_baselines.sh NAME "--flag value ..." [methods]
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
name=$1; flags=$2; methods=${3:-regional}
# shellcheck disable=SC2086
.venv/bin/tcig eval --models scenes --cases scenes:12:9500000 --cases folder:examples/unusual/tune \
  --methods "$methods" $flags --out "reports/tune_baselines/$name" --title "baselines: $name" --no-progress
