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
python - "$PWD" <<'PY'
import re, sys, nbformat
root = sys.argv[1]
subs = [(re.compile(re.escape(root) + '/?'), ''), (re.compile(r'/tmp/tmp[\w.-]+'), '<tmp>'), (re.compile(r'/(root|home/\w+)/'), '~/')]
def scrub(s):
    for pat, rep in subs: s = pat.sub(rep, s)
    return s
for name in ('Pretrain', 'Finetune_GLUE'):
    path = f'nbs/{name}.ipynb'
    nb = nbformat.read(path, as_version=4)
    for c in nb.cells:
        for o in c.get('outputs', []):
            if 'text' in o: o['text'] = scrub(o['text'])
            for k in ('text/plain', 'text/markdown', 'text/html'):
                if k in o.get('data', {}): o['data'][k] = scrub(o['data'][k])
            if 'traceback' in o: o['traceback'] = [scrub(t) for t in o['traceback']]
    nbformat.write(nb, path)
    left = [m for c in nb.cells for o in c.get('outputs', []) for m in re.findall(r'/(?:tmp|work|root|home)/\S*', str(o))]
    if left: sys.exit(f'{path}: machine paths left in the outputs: {left[:5]}')
PY
nbdev-clean
echo "outputs refreshed: review with git diff --stat nbs/"
