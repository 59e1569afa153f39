#!/usr/bin/env bash
# Build the docs site from the notebooks into _docs/, time-boxed, then check that every notebook has its page.
#   With quarto on PATH (or in .venv/bin): `nbdev-docs` (nbdev's preprocessing into _proc/, then quarto renders _docs/).
#   Without quarto: nbdev's own preprocessing (`proc_nbs` of nbdev-proc-nbs, the step that rejects a notebook it cannot process),
#   then each processed notebook rendered to HTML by nbconvert, so the pages can still be checked and looked at; this
#   says so, and is not the quarto site (no sidebar, search or cross-links).
# quarto: PyPI's quarto-cli is an sdist whose build downloads quarto from GitHub, so it cannot be installed on machines
# that reach only the package registries; install it from https://quarto.org where that is reachable.
# Usage: scripts/build_docs.sh [TIMEOUT_S]   (default 300; DOCS_FILE_GLOB=X.ipynb limits the build to some notebooks)
set -euo pipefail
cd "$(dirname "$0")/.."
limit=${1:-300}
[ -d .venv/bin ] && export PATH="$PWD/.venv/bin:$PATH"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 MPLBACKEND=Agg OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
glob=${DOCS_FILE_GLOB:-}
t0=$SECONDS
if command -v quarto >/dev/null; then
  echo "build_docs: nbdev-docs with $(quarto --version | head -1)"
  timeout "$limit" nbdev-docs
else
  echo "build_docs: quarto not found: nbdev's preprocessing, then nbconvert pages (not the quarto site)"
  rm -rf _proc
  # nbdev's proc_nbs, the preprocessing of nbdev-proc-nbs and nbdev-docs, called directly: the command would also write
  # nbdev.yml, _quarto.yml and sidebar.yml into nbs/ (not git-ignored; only quarto reads them) and try to install quarto
  # with sudo. This writes only _proc/ and _docs/, both git-ignored.
  timeout "$limit" python3 -c 'import sys; from nbdev.serve import proc_nbs; proc_nbs(n_workers=1, force=True, file_glob=sys.argv[1])' "$glob"
  # nbdev's processed notebooks break the notebook schema that nbconvert enforces: a `has_sd` key on its show_doc cells,
  # and execution timings as numbers in the cells' metadata.execution; neither is shown on a page
  python3 - <<'PY'
import json
from pathlib import Path
allowed = {'cell_type', 'id', 'metadata', 'source', 'attachments', 'outputs', 'execution_count'}
for nb in Path('_proc').glob('*.ipynb'):
    d = json.loads(nb.read_text())
    for c in d['cells']:
        for k in set(c) - allowed: del c[k]
        c.get('metadata', {}).pop('execution', None)
    nb.write_text(json.dumps(d, indent=1, ensure_ascii=False))
PY
  mkdir -p _docs
  left=$((limit - (SECONDS - t0))); [ $left -gt 10 ] || { echo "build_docs: out of time after preprocessing"; exit 124; }
  timeout "$left" jupyter nbconvert --to html --log-level WARN --output-dir _docs _proc/${glob:-*.ipynb}
fi
echo "build_docs: built in $((SECONDS - t0)) s"
# every notebook has its page: nbdev names it after the notebook without its number prefix (05_train -> train.html)
python3 - "$glob" <<'EOF'
import re, sys
from pathlib import Path
glob = sys.argv[1] or '*.ipynb'
missing = []
for nb in sorted(Path('nbs').glob(glob)):
    names = {f'{nb.stem}.html', f"{re.sub(r'^[0-9]+[a-z]?_', '', nb.stem)}.html"}
    names |= {n.lower() for n in names}
    if not any((Path('_docs')/n).exists() for n in names): missing.append(f'{nb.name} (no {" or ".join(sorted(names))})')
if missing: sys.exit('build_docs: notebooks without a page in _docs/: ' + ', '.join(missing))
print(f"build_docs: every notebook ({len(list(Path('nbs').glob(glob)))}) has its page in _docs/")
EOF
