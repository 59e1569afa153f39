#!/usr/bin/env bash
# Set up if needed, then: (1) the library must be exactly what nbdev-export makes of the notebooks, and every notebook
# clean (nbdev-clean); (2) every notebook runs (nbdev-test), (3) both walkthroughs run top to bottom in a kernel
# (nbconvert, short sizes) and (4) the docs site builds from the notebooks, these three side by side; (5) every recipe
# mutant fails a test; (6) pytest on two workers.
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

# nbdev-test, the walkthroughs and the docs build run side by side: the walkthroughs and the docs each keep one core
# busy, so one after the other they would leave the second core idle. nbdev-test skips the two walkthroughs, which
# run_walkthroughs.sh executes in full (their `#| notest` cells included). Each one's output is shown when it ends.
logs="$tmp/logs"; mkdir -p "$logs"
declare -A pid
side_by_side() {
  local name=$1; shift
  ( set +e; t0=$SECONDS; "$@" >"$logs/$name.log" 2>&1; rc=$?
    echo "$name: exit status $rc after $((SECONDS - t0)) s" >>"$logs/$name.log"; exit $rc ) &
  pid[$name]=$!
}
side_by_side nbdev-test env OMP_NUM_THREADS=1 nbdev-test --n-workers "${NBDEV_WORKERS:-2}" --timing --skip-file-re '^[_.]|^(Pretrain|Finetune_GLUE)\.ipynb$'
side_by_side walkthroughs bash scripts/run_walkthroughs.sh "$tmp/walkthroughs"
side_by_side docs bash scripts/build_docs.sh 600
failed=()
for name in nbdev-test walkthroughs docs; do
  if wait "${pid[$name]}"; then echo "== $name"; else echo "== $name: FAILED"; failed+=("$name"); fi
  cat "$logs/$name.log"
done
if [ ${#failed[@]} -gt 0 ]; then echo "FAIL: ${failed[*]} (output above)"; exit 1; fi

echo "== recipe mutants (each must fail a test)"
t0=$SECONDS; OMP_NUM_THREADS=1 python scripts/mutate_recipe.py --jobs 2 | tail -4; echo "mutants: $((SECONDS - t0)) s"

echo "== pytest"
# one torch thread per worker: two workers use both cores without oversubscribing them
t0=$SECONDS; OMP_NUM_THREADS=1 python -m pytest -q -n "${PYTEST_WORKERS:-2}" --durations=15 "$@"; echo "pytest: $((SECONDS - t0)) s"
echo "total: $SECONDS s"
