#!/usr/bin/env bash
# Set up if needed, then: (1) the library must be exactly what nbdev-export makes of the notebooks, and every notebook
# clean (nbdev-clean); (2) every notebook runs (nbdev-test); (3) both walkthroughs run top to bottom in a kernel
# (nbconvert, short sizes); (4) the docs pages build from the notebooks; (5) every recipe mutant fails a test;
# (6) pytest on two workers.
# Nothing here reaches the Hugging Face hub. Timings of each part are printed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source .venv/bin/activate
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONHASHSEED=0
export MPLBACKEND=Agg

echo "== notebooks vs library"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
git ls-files -co --exclude-standard -z | tar --null -T - -cf - | tar -xf - -C "$tmp"
( cd "$tmp" && nbdev-export && nbdev-clean ) >/dev/null
if ! diff -r -x __pycache__ "$tmp/electra_gdes" electra_gdes >/dev/null || ! diff -r -x .ipynb_checkpoints -x .neptune -x data_cache "$tmp/nbs" nbs >/dev/null; then
  diff -rq -x __pycache__ "$tmp/electra_gdes" electra_gdes || true
  diff -rq -x .ipynb_checkpoints -x .neptune -x data_cache "$tmp/nbs" nbs || true
  echo "FAIL: the library and the notebooks disagree, or a notebook is not clean. Run: nbdev-export && nbdev-clean, and commit both."
  exit 1
fi
echo "ok"

echo "== nbdev-test"
nbdev-test --n-workers "${NBDEV_WORKERS:-2}" --timing

echo "== walkthroughs (Pretrain, Finetune_GLUE top to bottom)"
t0=$SECONDS; bash scripts/run_walkthroughs.sh; echo "walkthroughs: $((SECONDS - t0)) s"

echo "== docs"
t0=$SECONDS; bash scripts/build_docs.sh 400; echo "docs: $((SECONDS - t0)) s"

echo "== recipe mutants (each must fail a test)"
t0=$SECONDS; OMP_NUM_THREADS=1 python scripts/mutate_recipe.py --jobs 2 | tail -4; echo "mutants: $((SECONDS - t0)) s"

echo "== pytest"
# one torch thread per worker: two workers use both cores without oversubscribing them
t0=$SECONDS; OMP_NUM_THREADS=1 python -m pytest -q -n "${PYTEST_WORKERS:-2}" --durations=15 "$@"; echo "pytest: $((SECONDS - t0)) s"
