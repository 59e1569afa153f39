#!/usr/bin/env bash
# Check, with pip's own resolver and PyPI, that the README's GPU install keeps the CUDA torch: a dry run of
#   pip install -c requirements/gpu-constraints.txt -e ".[EXTRAS]"
# in an empty virtual environment must choose torch == the pinned version as a CUDA build (it pulls nvidia-* packages)
# and a torchvision whose own requirement is that torch. Downloads only metadata (no wheels); needs PyPI.
# Local wheel folders, extra indexes and pip config files are ignored (PIP_CONFIG_FILE=/dev/null, no PIP_FIND_LINKS /
# PIP_EXTRA_INDEX_URL / PIP_CONSTRAINT), so a CPU wheel lying on this disk cannot stand in for PyPI's CUDA torch.
# Usage: scripts/check_gpu_install.sh [OUT_DIR] [EXTRAS]   (defaults: a temporary folder, "dev,neptune")
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-$(mktemp -d)}; extras=${2:-dev,neptune}
mkdir -p "$out"
PY=${PYTHON:-python3}
venv="$out/venv"
[ -x "$venv/bin/python" ] || "$PY" -m venv "$venv"
report="$out/gpu_install_report.json"
env -u PIP_FIND_LINKS -u PIP_EXTRA_INDEX_URL -u PIP_INDEX_URL -u PIP_CONSTRAINT PIP_CONFIG_FILE=/dev/null \
  timeout 600 "$venv/bin/python" -m pip install --dry-run --ignore-installed --quiet --report "$report" \
  -c requirements/gpu-constraints.txt -e ".[${extras}]"
"$venv/bin/python" - "$report" requirements/gpu-constraints.txt <<'PYEOF'
import json, re, sys
report, constraints = json.load(open(sys.argv[1])), open(sys.argv[2]).read()
pins = dict(re.findall(r'^(torch|torchvision)==(\S+)', constraints, re.M))
got = {i['metadata']['name'].lower(): i['metadata'] for i in report['install']}
def fail(msg): sys.exit(f'check_gpu_install: FAIL: {msg}')
torch = got.get('torch') or fail('the resolver did not choose torch at all')
if torch['version'] != pins['torch']: fail(f"torch {torch['version']} chosen, not the pinned {pins['torch']}")
cuda = sorted(n for n in got if n.startswith('nvidia-'))
if not cuda: fail(f"torch {torch['version']} pulls no nvidia-* package: not a CUDA build")
print(f"torch {torch['version']} (CUDA build: {len(cuda)} nvidia packages, e.g. {', '.join(cuda[:3])})")
tv = got.get('torchvision')
if tv is None: print('torchvision: none')
else:
    need = [d for d in tv.get('requires_dist', []) if re.match(r'torch\b(?!vision)', d)]
    if tv['version'] != pins['torchvision']: fail(f"torchvision {tv['version']} chosen, not the pinned {pins['torchvision']}")
    if not any(pins['torch'] in d for d in need): fail(f"torchvision {tv['version']} requires {need}, not torch {pins['torch']}")
    print(f"torchvision {tv['version']} (requires {', '.join(need)})")
for n in ('fastai', 'transformers', 'datasets', 'electra-gdes', 'electra_gdes'):
    if n in got: print(f"{n} {got[n]['version']}")
print(f"check_gpu_install: OK ({len(got)} packages in {sys.argv[1]})")
PYEOF
