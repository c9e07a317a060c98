#!/usr/bin/env bash
# The full study and the bench on an accelerator, in one prepared run (about 10 minutes on
# one GPU): run from the repository root of a checkout whose .venv has a CUDA jax
# (`.venv/bin/pip install -U "jax[cuda12]"`). Writes everything under ${OUT:-results/device}:
#   study/     the full run's REPORT.md, metrics.json and plots (python -m experiments all)
#   bench/     the bench's tables (python -m experiments bench --quick)
#   times.txt  the device, the wall time of each part
set -euo pipefail
out="${OUT:-results/device}"
py="${PYTHON:-.venv/bin/python}"
mkdir -p "$out"
{
    echo "device: $("$py" -c 'import jax; d = jax.devices()[0]; print(jax.default_backend(), d.device_kind, len(jax.devices()))')"
    start=$(date +%s)
    "$py" -m experiments all --out "$out/study" > "$out/study.log" 2>&1
    echo "python -m experiments all: $(( $(date +%s) - start )) s"
    start=$(date +%s)
    "$py" -m experiments bench --quick --out "$out" > "$out/bench.log" 2>&1
    echo "python -m experiments bench --quick: $(( $(date +%s) - start )) s"
} | tee "$out/times.txt"
