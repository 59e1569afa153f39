"""The docs: the landing page links every notebook, llms.txt lists every module, nbdev's docs preprocessing runs no test
code; the site's post-pass (docs/prepare.py), its checks (docs/check_site.py, which scripts/build_docs.sh runs) and the
built site in a headless browser (scripts/docs_screenshot.py)."""
import ast, json, re, shutil, sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT/'nbs'
DOCS = ROOT/'_docs'
sys.path.insert(0, str(ROOT/'docs')); sys.path.insert(0, str(ROOT/'scripts'))
import prepare, check_site  # noqa: E402

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
    """Imports in a cell of their own: otherwise nbdev-docs executes that cell's tests (slow, and a failure rejects the
    notebook). scripts/build_docs.sh keeps such a cell from running (docs/prepare.py sources); nbdev-docs elsewhere does not."""
    bad = [f'{nb.name} cell {i}' for nb in sorted(NBS.glob('*.ipynb')) for i, c in enumerate(_cells(nb))
           if c['cell_type'] == 'code' and _runs_during_docs(_src(c))]
    assert not bad, 'cells that mix imports with other code (move the imports to their own cell): ' + ', '.join(bad)


# ---- the docs site: docs/prepare.py (the post-pass between nbdev's preprocessing and Sphinx)

def test_reading_order():
    "index, the numbered notebooks by number (05 < 05a < 05b < 06 < 10), then the others as the landing page links them."
    stems = ['Sharing_Study', '10_glue_submission', '05b_trackers', 'index', 'Pretrain', '05_train', '00_config',
             'Finetune_SQuAD', '13_squad_finetune', '05a_rtd_eval', 'Finetune_GLUE', '06_long_runs', '2_x']
    index_md = '[a](Pretrain.ipynb) [b](Finetune_GLUE.ipynb#x) [c](00_config.ipynb) [d](Sharing_Study.ipynb) [e](Pretrain.ipynb)'
    assert prepare.reading_order(stems, index_md) == [
        'index', '00_config', '2_x', '05_train', '05a_rtd_eval', '05b_trackers', '06_long_runs', '10_glue_submission',
        '13_squad_finetune', 'Pretrain', 'Finetune_GLUE', 'Sharing_Study', 'Finetune_SQuAD']   # unlinked: last, by name

def test_the_sidebar_is_every_notebook_present():
    order = prepare.notebook_order(NBS)
    assert order[0] == 'index' and sorted(order) == sorted(p.stem for p in NBS.glob('*.ipynb'))
    assert [prepare.page_name(s) for s in ('03_rtd', '05a_rtd_eval', 'Finetune_GLUE')] == ['rtd', 'rtd_eval', 'finetune_glue']
    assert prepare.notebook_order(NBS, regex=r'^(index|03_rtd)\.ipynb$') == ['index', '03_rtd']

def _processed_notebook():
    "A notebook as nbdev's proc_nbs leaves it: front matter, options, a show_doc output with quarto link syntax."
    sd = ('---\n\n[source](https://github.com/o/r/blob/main/m.py#L3){target="_blank" style="float:right"}\n\n'
          '### Thing.go\n\n```python\ndef go(self)\n```\n\n*Uses [`f`](https://o.github.io/r/other.html#f.x).*')
    cells = [
        {'cell_type': 'raw', 'id': 'a', 'metadata': {}, 'source': '---\ndescription: What it does,\n  over two lines.\n'
         'output-file: thing.html\ntitle: The thing\n\n---\n\n'},
        {'cell_type': 'markdown', 'id': 'b', 'metadata': {}, 'source': '#| export: true\nSee [the data](01_data.ipynb) and $x^2$.'},
        {'cell_type': 'code', 'id': 'c', 'metadata': {}, 'execution_count': 1, 'has_sd': True,
         'source': '#| echo: false\n#| output: asis\nshow_doc(Thing.go)',
         'outputs': [{'output_type': 'execute_result', 'execution_count': 1, 'metadata': {},
                      'data': {'text/markdown': sd, 'text/plain': 'x'}}]},
        {'cell_type': 'code', 'id': 'd', 'metadata': {}, 'execution_count': None, 'outputs': [],
         'source': '#| include: false\n#| eval: false\nsecret()'},
        {'cell_type': 'code', 'id': 'e', 'metadata': {}, 'execution_count': None, 'outputs': [], 'source': '#| notest\nshown()'}]
    return {'cells': cells, 'metadata': {}, 'nbformat': 4, 'nbformat_minor': 5}

def test_prepare_makes_a_sphinx_source(tmp_path):
    nb = tmp_path/'02_thing.ipynb'
    nb.write_text(json.dumps(_processed_notebook()))
    pages = {'02_thing': 'thing', '01_data': 'data', 'other': 'other'}
    links = prepare.Links(pages, 'https://o.github.io/r/', anchors={'other': {'f'}, 'thing': {'thing.go'}})
    out = prepare.process(nb, pages, links)
    assert out.name == 'thing.ipynb' and not nb.exists()
    title, md, sd, hidden, shown = json.loads(out.read_text())['cells']
    assert title['cell_type'] == 'markdown' and title['source'] == '# The thing\n\n*What it does, over two lines.*\n'
    assert md['source'] == 'See [the data](data.html) and $x^2$.'          # the option line dropped, a local link
    assert sd['metadata']['tags'] == ['remove-input'] and 'has_sd' not in sd and sd['source'] == 'show_doc(Thing.go)'
    out_md = sd['outputs'][0]['data']['text/markdown']
    assert out_md.startswith('<hr id="thing.go">')                          # the anchor nbdev's links name, lower case
    assert '<a href="https://github.com/o/r/blob/main/m.py#L3" target="_blank" style="float:right">source</a>' in out_md
    assert '(other.html#f)' in out_md                                       # a method without an entry: its class's
    assert hidden['metadata']['tags'] == ['remove-cell'] and hidden['source'] == 'secret()'
    assert 'tags' not in shown['metadata'] and shown['source'] == 'shown()'

def test_the_docs_build_runs_no_test_code(tmp_path):
    "In the copy nbdev preprocesses, a cell with imports and other code is not run; its top-level imports are, hidden."
    def cell(src): return {'cell_type': 'code', 'id': 'x', 'metadata': {}, 'execution_count': None, 'outputs': [], 'source': src}
    imports, off = prepare.isolate_imports(cell('#| notest\nimport os\nfrom a import (b,\n  c)\nrun(os)\nimport d'))
    assert imports['source'] == '#| include: false\nimport os\nfrom a import (b,\n  c)\nimport d'
    assert off['source'] == '#| eval: false\n#| notest\nimport os\nfrom a import (b,\n  c)\nrun(os)\nimport d'
    assert prepare.isolate_imports(cell('def f():\n    import x\n    return x\nf()')) == [cell('#| eval: false\ndef f():\n    import x\n    return x\nf()')]
    for keep in ('import os\nimport sys', '#| export\nimport os\nx = 1', 'x = 1', '%%time\nimport os\nx()', '#| eval: false\nimport os\nx()'):
        assert prepare.isolate_imports(cell(keep)) == [cell(keep)]
    # after nbdev: the post-pass shows the cell as the notebook has it, and hides the added one
    nb = tmp_path/'Walk.ipynb'
    nb.write_text(json.dumps({'cells': [imports, off], 'metadata': {}, 'nbformat': 4, 'nbformat_minor': 5}))
    hidden, shown = json.loads(prepare.process(nb, {'Walk': 'walk'}, prepare.Links({}, '')).read_text())['cells']
    assert hidden['metadata']['tags'] == ['remove-cell']
    assert shown['source'] == 'import os\nfrom a import (b,\n  c)\nrun(os)\nimport d' and 'tags' not in shown['metadata']

def test_prepare_links_and_toctree():
    links = prepare.Links({'03_rtd': 'rtd', 'Pretrain': 'pretrain'}, 'https://o.github.io/r')
    assert links.url('03_rtd.ipynb#masking') == 'rtd.html#masking'
    assert links.url('https://o.github.io/r/rtd.html#mask_tokens') == 'rtd.html#mask_tokens'
    assert links.url('https://o.github.io/r/') == 'index.html'
    assert links.url('https://example.org/x.ipynb') == 'https://example.org/x.ipynb'
    mods, walks = prepare.toctree_cells(['index', '03_rtd', 'Pretrain'], {'index': 'index', '03_rtd': 'rtd', 'Pretrain': 'pretrain'})
    assert ':caption: Library' in mods['source'] and mods['source'].rstrip('`\n').endswith('\nrtd')
    assert ':caption: Walkthroughs' in walks['source'] and ':hidden:' in walks['source']

# ---- the built site (scripts/build_docs.sh builds _docs/; scripts/test.sh runs it before pytest)

needs_site = pytest.mark.skipif(not (DOCS/'index.html').exists(),
                                reason='no built docs site in _docs/: run scripts/build_docs.sh (scripts/test.sh does)')

@needs_site
def test_the_checks_find_a_broken_site(tmp_path):
    "docs/check_site.py names each thing a broken build would get wrong (each check can fail)."
    site = tmp_path/'site'
    shutil.copytree(DOCS, site, ignore=shutil.ignore_patterns('_sources'))
    before = set(check_site.check(site))
    api_page = next(prepare.page_name(s) + '.html' for s in prepare.notebook_order(NBS)
                    if check_site.API_NAME in check_site.exported_names(NBS/f'{s}.ipynb'))
    fig_page = next(p for p in check_site.Page(site/'index.html').sidebar()[1:]
                    if any(i.startswith('_images/') for i in check_site.Page(site/p).images))
    math_page = next(p for p in check_site.Page(site/'index.html').sidebar()[1:] if check_site.Page(site/p).math)
    (site/'config.html').unlink()
    idx = (site/'index.html').read_text()
    a, b = re.search(r'<a class="reference internal" href="data.html">', idx).span(), re.search(r'<a class="reference internal" href="model.html">', idx).span()
    (site/'index.html').write_text(idx[:a[0]] + idx[b[0]:b[1]] + idx[a[1]:b[0]] + idx[a[0]:a[1]] + idx[b[1]:])  # data <-> model
    api = (site/api_page).read_text()
    (site/api_page).write_text(api.replace(f'<hr id="{check_site.API_NAME}"', '<hr id="gone"'))
    si = (site/'searchindex.js').read_text()
    (site/'searchindex.js').write_text(si.replace(f'"{check_site._stem(check_site.API_NAME)}":', '"x_gone":'))
    fig = next(i for i in check_site.Page(site/fig_page).images if i.startswith('_images/'))
    (site/fig).unlink()
    (site/'_static'/'mathjax'/'tex-chtml.js').unlink()
    m = (site/math_page).read_text()
    (site/math_page).write_text(m.replace('_static/mathjax/tex-chtml.js', 'https://cdn.example.org/mathjax/tex-chtml.js'))
    new = '\n'.join(sorted(set(check_site.check(site)) - before))
    for want in ('00_config.ipynb has no page config.html', 'the sidebar of index.html lists',
                 f'{api_page} has no API entry (show_doc) for {check_site.API_NAME}',
                 f'the search index does not find {check_site.API_NAME}', f'{fig_page}: image {fig} is missing',
                 '_static/mathjax/tex-chtml.js is missing', f'{math_page} loads MathJax from',
                 f'{math_page} loads https://cdn.example.org/mathjax/tex-chtml.js from the network',
                 f'links {api_page}#{check_site.API_NAME}: no such anchor'):
        assert want in new, f'not found: {want!r} in\n{new}'

@needs_site
def test_the_site_renders_in_a_headless_browser(tmp_path):
    "The landing page, an API entry, math, a figure and the search, rendered from file:// with their JavaScript."
    import docs_screenshot
    exe = docs_screenshot.find_browser()
    if exe is None: pytest.skip('this machine has no Chromium (apt-get install chromium-headless-shell): no browser check')
    problems, shots, shown = docs_screenshot.run(DOCS, tmp_path, exe)
    assert not problems, problems
    assert set(shown) == {'index', 'api', 'math', 'figure'} and len(shots) == 5
    # and the browser check fails on a page whose MathJax fonts and figure are gone
    site = tmp_path/'broken'
    shutil.copytree(DOCS, site, ignore=shutil.ignore_patterns('_sources', 'woff-v2'))
    for img in check_site.Page(site/shown['figure']).images:
        if img.startswith('_images/'): (site/img).unlink(missing_ok=True)
    problems, _, _ = docs_screenshot.run(site, tmp_path/'shots', exe, kinds=('math', 'figure'))
    assert any('no MathJax font loaded' in p for p in problems), problems
    assert any('a figure did not load' in p for p in problems), problems

def test_numbered_notebooks_are_committed_with_their_outputs():
    """Each numbered notebook shows what its cells compute (scripts/refresh_notebook_outputs.sh), on GitHub and in the
    docs site alike; warnings (stderr) are not kept."""
    missing, stderr = [], []
    for nb in sorted(NBS.glob('[0-9]*.ipynb')):
        outs = [o for c in _cells(nb) for o in c.get('outputs', [])]
        if not outs: missing.append(nb.name)
        stderr += [nb.name for o in outs if o['output_type'] == 'stream' and o.get('name') == 'stderr']
    assert not missing, f'committed without outputs (run bash scripts/refresh_notebook_outputs.sh {" ".join("nbs/" + m for m in missing)}): {missing}'
    assert not stderr, f'stderr kept in the outputs of: {sorted(set(stderr))}'

def test_no_two_notebooks_share_a_page():
    "nbdev names a page after its notebook without the number (`07a_pretrain_job` -> `pretrain_job`): two must not clash."
    pages = [prepare.page_name(nb.stem) for nb in NBS.glob('*.ipynb')]
    assert len(pages) == len(set(pages)), f'notebooks that would share a docs page: {sorted({p for p in pages if pages.count(p) > 1})}'
