#!/usr/bin/env bash
# The GPU benchmark grid, one command:
#
#   conda env create -f environment-gpu.yml && conda activate mmm-jax-gpu
#   bash benchmarks/run_gpu.sh [--pmm-python PATH]     # PATH: a python with pymc-marketing + numpyro (+ jax[cuda])
#
# Writes everything under benchmarks/results/ with the device in the file names
# (bench_suite_gpu-<device>_*.json/.md/.png, bench_batch JSON, gpu-<device>_env.txt):
#   1. samplers on bigger problems: numpyro / blackjax (window adaptation) / chees / meads,
#      weeks 156,520 x channels 10,30 x chains 4,64 x HSGP off,on; speed options float32 and
#      the XLA compilation cache on the chees rows;
#   2. warm-up length: chees vs blackjax window adaptation with 64 chains and 100..1000 warm-up
#      steps (the issue's target: R-hat < 1.01 with fewer warm-up steps than window adaptation);
#   3. the same small problem on this machine's CPU (JAX_PLATFORMS=cpu) and on the GPU
#      (small models usually lose on a GPU);
#   4. the batch engine: 1,000 brands x 156 weeks x 10 channels in one job;
#   5. the hierarchical model: Meridian's demo shape and the 50-market comparison with pm.sample.
# Budget: a few hours on one H100; every run has its own time limit (--timeout).
set -euo pipefail
cd "$(dirname "$0")/.."

PMM=()
if [[ "${1:-}" == "--pmm-python" && -n "${2:-}" ]]; then PMM=(--pmm-python "$2"); fi

if ! command -v nvidia-smi >/dev/null; then echo "run_gpu.sh: no nvidia-smi: is this a GPU machine?" >&2; exit 2; fi
NAME=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
SLUG=$(echo "$NAME" | tr '[:upper:]' '[:lower:]' | sed -e 's/nvidia//' -e 's/[^a-z0-9]\+/-/g' -e 's/^-//' -e 's/-$//')
TAG="gpu-${SLUG}"
OUT=benchmarks/results
mkdir -p "$OUT"
python - <<'EOF'
import jax, sys
kinds = {d.platform for d in jax.devices()}
print("JAX devices:", jax.devices())
if "gpu" not in kinds and "cuda" not in kinds:
    sys.exit("run_gpu.sh: JAX sees no GPU (install jax[cuda12]: conda env create -f environment-gpu.yml)")
EOF
{
  echo "device: $NAME"; date -u +"date: %Y-%m-%dT%H:%M:%SZ"; nvidia-smi
  python -c "import jax, jaxlib, numpyro, blackjax, pymc; print('jax', jax.__version__, 'jaxlib', jaxlib.__version__, 'numpyro', numpyro.__version__, 'blackjax', blackjax.__version__, 'pymc', pymc.__version__); print(jax.devices())"
  git rev-parse HEAD 2>/dev/null || true
} > "$OUT/${TAG}_env.txt" 2>&1

# 1. samplers x sizes on the GPU (pymc-default and nutpie stay on the CPU: left out here)
python benchmarks/bench_suite.py --tag "$TAG" \
  --samplers numpyro,blackjax,chees,meads${PMM:+,pmm-numpyro} "${PMM[@]}" \
  --weeks 156,520 --channels 10,30 --chains 4,64 --hsgp off,on \
  --warmup 1000 --draws 1000 \
  --speed-options float32,cache --speed-sampler chees --speed-cell 520,30 --timeout 1800

# 2. warm-up length with 64 chains: many-chain (chees) vs window adaptation (blackjax)
for W in 100 200 500 1000; do
  python benchmarks/bench_suite.py --tag "${TAG}-warmup${W}" --samplers blackjax,chees \
    --weeks 156 --channels 10 --chains 64 --warmup "$W" --draws 500 --speed-options none --no-plot --timeout 1800
done

# 3. small problem: CPU vs GPU of the same machine
python benchmarks/bench_suite.py --tag "${TAG}-small" --samplers numpyro,blackjax,chees \
  --weeks 104,156 --channels 3,10 --chains 4,64 --speed-options none --timeout 1800
JAX_PLATFORMS=cpu python benchmarks/bench_suite.py --tag "${TAG}-host-cpu-small" --samplers numpyro,blackjax,chees \
  --weeks 104,156 --channels 3,10 --chains 4,64 --speed-options none --timeout 1800

# 4. batch engine: 1,000 brands in one job
python benchmarks/bench_batch.py --grid 1000 --weeks 156 --channels 10 --target-brands 0 --loop-brands 0 \
  --pmm-brands 0 --device-name "$NAME" --out "$OUT"

# 5. hierarchical model: Meridian's demo shape (10 chains, 2,500 + 1,000) and 50 x 156 x 6 vs pm.sample
#    (pm.sample runs on the host CPU); results under $OUT/${TAG}-hier/
python benchmarks/bench_hier.py --preset meridian --runs ours-numpyro,ours-blackjax --timeout 3600 --out "$OUT/${TAG}-hier"
python benchmarks/bench_hier.py --preset meridian --grad-only --out "$OUT/${TAG}-hier"
python benchmarks/bench_hier.py --preset compare --timeout 7200 --out "$OUT/${TAG}-hier"

echo "run_gpu.sh: done; results in $OUT (${TAG}*)"
