#!/usr/bin/env bash
# Re-execute the two walkthroughs at their real size (the tiny default pretraining run, then fine-tuning its
# discriminator on the practice suite) in place, so that the committed notebooks show the default run's figures and
# tables. Machine-specific paths in the outputs are replaced by placeholders, then nbdev-clean. Takes about 10-20
# minutes on a 2-core CPU; runs into ../checkpoints and ../test_outputs (git-ignored). Usage:
#   bash scripts/refresh_walkthrough_outputs.sh && git add nbs/Pretrain.ipynb nbs/Finetune_GLUE.ipynb
# (Editing a notebook with tools/nbpercent.py drops its outputs: run this again afterwards.)
set -euo pipefail
cd "$(dirname "$0")/.."
source .venv/bin/activate
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONHASHSEED=0
unset MPLBACKEND   # the kernel's inline backend: the figures go into the notebooks
unset ELECTRA_GDES_WALKTHROUGH_STEPS ELECTRA_GDES_WALKTHROUGH_RUNS ELECTRA_GDES_WALKTHROUGH_EPOCHS ELECTRA_GDES_WALKTHROUGH_DIR
# a fresh default run: the notebook resumes a finished one instead, and would show an older run's curves
rm -rf checkpoints/pretrain/electra-tiny-gdes checkpoints/glue/practice test_outputs/practice
for nb in Pretrain Finetune_GLUE; do
  start=$SECONDS
  jupyter nbconvert --to notebook --execute --inplace "nbs/$nb.ipynb" --ExecutePreprocessor.timeout=3600 --log-level WARN
  echo "$nb: executed in place in $((SECONDS - start)) s"
done
python tools/scrub_outputs.py nbs/Pretrain.ipynb nbs/Finetune_GLUE.ipynb
nbdev-clean
echo "outputs refreshed: review with git diff --stat nbs/"
