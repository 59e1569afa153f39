#!/usr/bin/env bash
# Set up this machine: a virtual environment in .venv from the pinned CPU lock (installed with --no-deps so that pip
# never moves torch and never installs torchvision), then this package in editable mode. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then "$PY" -m venv .venv; fi
stamp=.venv/.lock-installed
if [ ! -f "$stamp" ] || ! cmp -s requirements/cpu.lock "$stamp"; then
  .venv/bin/python -m pip install -q --no-deps -r requirements/cpu.lock 2>&1 | grep -v "is ignored: it is neither" || true
  .venv/bin/python -c "import torch, transformers, fastai, datasets" # fails loudly if the lock did not install
  cp requirements/cpu.lock "$stamp"
fi
.venv/bin/python -m pip install -q --no-deps --no-build-isolation -e . 2>&1 | grep -v "is ignored: it is neither" || true
echo "setup done: $(.venv/bin/python -c 'import torch, transformers, fastai; print("torch", torch.__version__, "transformers", transformers.__version__, "fastai", fastai.__version__)')"
