#!/usr/bin/env bash
# Re-execute the numbered notebooks (or those given) with nbdev's test runner and keep their outputs, so that the
# committed notebooks show what their cells compute (a tokenized example, a masked batch, a figure) on GitHub and in
# the docs site. `#| notest` cells are skipped, as under nbdev-test; stderr streams (warnings) are dropped and
# machine paths replaced (tools/scrub_outputs.py), then nbdev-clean. About 3 minutes on a 2-core CPU. Usage:
#   bash scripts/refresh_notebook_outputs.sh [nbs/03_rtd.ipynb ...] && git add nbs
# (Editing a notebook with tools/nbpercent.py drops its outputs: run this again afterwards.)
set -euo pipefail
cd "$(dirname "$0")/.."
source .venv/bin/activate
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONHASHSEED=0 OMP_NUM_THREADS=1
unset MPLBACKEND   # the kernel's inline backend: the figures go into the notebooks
if [ $# -gt 0 ]; then notebooks=("$@"); else notebooks=(nbs/[0-9]*.ipynb); fi
for nb in "${notebooks[@]}"; do
  case "$(basename "$nb")" in [0-9]*) ;; *) echo "$nb: not a numbered notebook (the walkthroughs: scripts/refresh_walkthrough_outputs.sh)"; exit 2;; esac
done
start=$SECONDS
printf '%s\n' "${notebooks[@]}" | xargs -P "${NBDEV_WORKERS:-2}" -I{} nbdev-test --save {}
python tools/scrub_outputs.py --drop-stderr "${notebooks[@]}"
nbdev-clean
echo "outputs refreshed in ${#notebooks[@]} notebook(s) in $((SECONDS - start)) s"
