#!/usr/bin/env bash
# Build the docs site from the notebooks into _docs/, time-boxed, then check it (docs/check_site.py).
#   1. docs/prepare.py sources: a copy of nbs/ (_proc_src/, removed after step 2) in which nbdev's preprocessing runs only
#      imports and what show_doc needs, never a test or a training cell (the notebooks are not changed).
#   2. nbdev's own docs preprocessing (`proc_nbs`, the step of nbdev-docs before quarto) into _proc/: show_doc entries for
#      the exported functions and classes, front matter, `#|` options; it rejects a notebook it cannot process.
#   3. docs/prepare.py site: the post-pass that makes _proc/ a Sphinx source (pages named as nbdev names them, titles,
#      cell options as myst-nb tags, local links, the sidebar in reading order from the notebooks present).
#   4. Sphinx + myst-nb + sphinx-book-theme (docs/conf.py): the stored outputs and figures (nothing is executed), the
#      sidebar, search that works offline and from file://, math by MathJax copied into _static.
# Open _docs/index.html in a browser. quarto is not used (it cannot be installed from the package registries).
# Usage: scripts/build_docs.sh [TIMEOUT_S]   (default 300; DOCS_FILE_GLOB=X.ipynb or DOCS_FILE_RE=regex limits the
# build to some notebooks; a build without index.ipynb gets a stub landing page)
set -euo pipefail
cd "$(dirname "$0")/.."
limit=${1:-300}
[ -d .venv/bin ] && export PATH="$PWD/.venv/bin:$PATH"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 MPLBACKEND=Agg OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
export PYTHONDONTWRITEBYTECODE=1
glob=${DOCS_FILE_GLOB:-} regex=${DOCS_FILE_RE:-}
t0=$SECONDS
left() { local l=$((limit - (SECONDS - t0))); [ $l -gt 5 ] || { echo "build_docs: out of time ($limit s) before $1" >&2; exit 124; }; echo $l; }
rm -rf _proc _proc_src _docs
python3 docs/prepare.py sources nbs _proc_src
# nbdev's proc_nbs, called directly: the nbdev-proc-nbs command would also write nbdev.yml, _quarto.yml and sidebar.yml
# into nbs/ and try to install quarto. This writes only _proc_src/, _proc/ and _docs/, all git-ignored.
timeout "$limit" python3 -c 'import sys; from nbdev.serve import proc_nbs; proc_nbs(sys.argv[1], n_workers=1, force=True, file_glob=sys.argv[2], file_re=sys.argv[3])' _proc_src "$glob" "$regex"
rm -rf _proc_src
t1=$SECONDS
python3 docs/prepare.py site _proc
# -W: a warning (a broken reference, an unreadable image, a notebook myst-nb cannot read) fails the build. Sphinx writes
# into _proc/_html, then moved to _docs/: myst-nb puts its jupyter_execute/ beside the output folder.
timeout "$(left Sphinx)" python3 -m sphinx -b html -q -W --keep-going -j 1 -c docs -d _proc/_doctrees _proc _proc/_html
mv _proc/_html _docs
echo "build_docs: built _docs/ in $((SECONDS - t0)) s (nbdev preprocessing $((t1 - t0)) s, Sphinx $((SECONDS - t1)) s)"
python3 docs/check_site.py _docs
