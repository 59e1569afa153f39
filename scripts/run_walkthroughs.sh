#!/usr/bin/env bash
# Execute the two walkthrough notebooks top to bottom in a Jupyter kernel, as a reader's "Run All" does, but short:
# the slow cells read their size from ELECTRA_GDES_WALKTHROUGH_* (here 10 pretraining steps, 1 fine-tuning run of 1
# epoch per task) and write under a temporary folder. The executed copies go to that folder too: the notebooks in
# nbs/ are not touched. Any error in a cell fails the script. Usage: bash scripts/run_walkthroughs.sh [output folder]
set -euo pipefail
cd "$(dirname "$0")/.."
source .venv/bin/activate
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONHASHSEED=0
export MPLBACKEND=Agg OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
out="${1:-$(mktemp -d)}"; mkdir -p "$out"
export ELECTRA_GDES_WALKTHROUGH_DIR="$(cd "$out" && pwd)/runs"
export ELECTRA_GDES_WALKTHROUGH_STEPS="${ELECTRA_GDES_WALKTHROUGH_STEPS:-10}"
export ELECTRA_GDES_WALKTHROUGH_RUNS="${ELECTRA_GDES_WALKTHROUGH_RUNS:-1}"
export ELECTRA_GDES_WALKTHROUGH_EPOCHS="${ELECTRA_GDES_WALKTHROUGH_EPOCHS:-1}"
# Pretrain first: Finetune_GLUE fine-tunes the discriminator it leaves in $ELECTRA_GDES_WALKTHROUGH_DIR/pretrain
for nb in Pretrain Finetune_GLUE; do
  start=$SECONDS
  jupyter nbconvert --to notebook --execute "nbs/$nb.ipynb" --output-dir "$out" --output "$nb.ipynb" \
    --ExecutePreprocessor.timeout=1200 --log-level WARN
  echo "$nb: ran top to bottom in $((SECONDS - start)) s -> $out/$nb.ipynb"
done
