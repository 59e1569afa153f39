"The docs: the landing page links every notebook, llms.txt lists every module, and nbdev's docs preprocessing runs no test code."
import ast, json, re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT/'nbs'

def _cells(nb): return json.loads(nb.read_text())['cells']
def _src(c): return ''.join(c['source'])

def test_index_links_every_notebook():
    md = '\n'.join(_src(c) for c in _cells(NBS/'index.ipynb') if c['cell_type'] == 'markdown')
    linked = set(re.findall(r'\]\(([^)#]+\.ipynb)\)', md))
    want = {nb.name for nb in NBS.glob('*.ipynb')} - {'index.ipynb'}
    assert not want - linked, f'index.ipynb does not link: {sorted(want - linked)}'
    assert not linked - want - {'index.ipynb'}, f'index.ipynb links notebooks that do not exist: {sorted(linked - want)}'
    for heading in ('## Install', '## Quick start', '## Map of the notebooks'): assert heading in md

def test_llms_txt_lists_every_module():
    "nbdev lists a module in llms.txt when its docstring says more than the summary line (an `#| export` markdown cell)."
    listed = set(re.findall(r'\[electra_gdes\.(\w+)\]', (NBS/'llms.txt').read_text()))
    modules = {p.stem for p in (ROOT/'electra_gdes').glob('*.py') if not p.name.startswith('_')}
    assert not modules - listed, (f'not in nbs/llms.txt: {sorted(modules - listed)}; give each notebook an `#| export` '
                                  'markdown cell (an overview under its title), then nbdev-export')

def _runs_during_docs(source: str) -> bool:
    "nbdev's exec_show_docs runs a non-exported cell that imports anything; flag those that also run other code (tests)."
    lines = source.splitlines()
    if any(l.startswith('#|') and l[2:].split()[:1] and l[2:].split()[0] in ('export', 'exports', 'exporti', 'exec_doc', 'eval:')
           for l in lines if l.startswith('#|')): return False
    if any(l.replace(' ', '') == '#|eval:false' for l in lines): return False
    try: tree = ast.parse(source)
    except SyntaxError: return False   # magics: nbdev does not parse them either
    tops = tree.body
    return any(isinstance(t, (ast.Import, ast.ImportFrom)) for t in tops) and any(isinstance(t, (ast.Expr, ast.Assign)) for t in tops)

def test_docs_preprocessing_runs_no_test_code():
    "Imports in a cell of their own: otherwise the docs build executes that cell's tests (slow, and a failure rejects the notebook)."
    bad = [f'{nb.name} cell {i}' for nb in sorted(NBS.glob('*.ipynb')) for i, c in enumerate(_cells(nb))
           if c['cell_type'] == 'code' and _runs_during_docs(_src(c))]
    assert not bad, 'cells that mix imports with other code (move the imports to their own cell): ' + ', '.join(bad)
