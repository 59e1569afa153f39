"""The passes around nbdev's docs preprocessing (`proc_nbs`, whose output _proc/ is quarto's input) for Sphinx + myst-nb.

`sources` (before nbdev): a copy of nbs/ for the preprocessing, in which nbdev executes only what show_doc needs.
nbdev runs every cell that contains an import; a cell that also runs other code (a test, a training run) gets
`#| eval: false`, and its top-level imports go into a hidden cell before it, so the docs build runs no test code
and a slow or failing test cannot reject a notebook (the notebooks themselves are not changed; tests/test_docs.py asks
for import-only cells).

`site` (after nbdev), in place in _proc/, for each processed notebook:
- renamed to the page nbdev gives it (`nbdev.config.nbpath2html`: 03_rtd.ipynb -> rtd.ipynb, so rtd.html);
- the front-matter cell becomes the title and the description;
- cell options (`#| ...`): `echo: false` -> myst-nb's remove-input tag, `output: false` -> remove-output,
  `include: false` -> remove-cell; every other option line is dropped (code and markdown cells);
- quarto's link attributes (`[source](url){target="_blank" style="..."}`, show_doc's source link) become an HTML link;
- links to notebooks (`03_rtd.ipynb`) and nbdev's links into the hosted docs (`<doc_host>/rtd.html#mask_tokens`)
  become links between the local pages; each show_doc entry gets the anchor those links name (`#mask_tokens`);
- keys that the notebook schema does not allow (nbdev's `has_sd`, timings in metadata.execution) are dropped.
The landing page (index) gets a hidden toctree: the sidebar, in reading order (`reading_order`).

Usage: python docs/prepare.py sources NBS DST; python docs/prepare.py site [_proc]
"""
import ast, json, re, shutil, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CELL_KEYS = {'cell_type', 'id', 'metadata', 'source', 'attachments', 'outputs', 'execution_count'}
TAG_OF = {('echo', 'false'): 'remove-input', ('output', 'false'): 'remove-output', ('include', 'false'): 'remove-cell'}


def page_name(nb) -> str:
    "The page nbdev makes of notebook `nb` (its name, lower case, without the number prefix): 03_rtd -> rtd."
    from nbdev.config import nbpath2html
    return nbpath2html(Path(nb)).stem


def _number(stem):
    m = re.match(r'^(\d+)([a-zA-Z0-9]*)_', stem)
    return (int(m.group(1)), m.group(2)) if m else None


def reading_order(stems, index_md: str = '') -> list:
    """Notebook names (stems) in reading order: index, then the numbered notebooks by number (05 < 05a < 05b < 06),
    then the others (the walkthroughs) in the order the landing page first links them (`index_md`), then by name."""
    stems = list(dict.fromkeys(stems))
    linked = list(dict.fromkeys(re.findall(r'\]\(([^)#\s]+)\.ipynb[)#]', index_md)))
    numbered = sorted((s for s in stems if _number(s)), key=lambda s: (_number(s), s))
    rest = [s for s in stems if s != 'index' and not _number(s)]
    rest = sorted(rest, key=lambda s: (linked.index(s) if s in linked else len(linked), s))
    return (['index'] if 'index' in stems else []) + numbered + rest


def notebook_order(nbs=ROOT/'nbs', glob='*.ipynb', regex='') -> list:
    "The notebooks of `nbs` that a build with this glob / regex includes, in reading order (stems)."
    stems = [p.stem for p in Path(nbs).glob(glob or '*.ipynb')
             if not p.name.startswith(('.', '_')) and (not regex or re.search(regex, p.name))]
    idx = Path(nbs)/'index.ipynb'
    md = '\n'.join(''.join(c['source']) for c in json.loads(idx.read_text())['cells']
                   if c['cell_type'] == 'markdown') if idx.exists() else ''
    return reading_order(stems, md)


def _src(c): return ''.join(c['source']) if isinstance(c['source'], list) else c['source']


def isolate_imports(cell):
    """[cells] for the docs preprocessing in place of `cell`: a code cell that nbdev would run for its imports but that also
    runs other code becomes `#| eval: false`, after a hidden cell with its top-level imports; any other cell is kept."""
    src = _src(cell)
    if cell['cell_type'] != 'code': return [cell]
    opts, body = _options(src)
    if opts.get('eval') == 'false' or opts.keys() & {'export', 'exports', 'exporti', 'exec_doc'}: return [cell]
    try: tree = ast.parse(body)
    except SyntaxError: return [cell]   # magics: nbdev does not run them either
    imports = (ast.Import, ast.ImportFrom)
    if not any(isinstance(n, imports) for n in ast.walk(tree)): return [cell]
    if all(isinstance(n, imports) for n in tree.body): return [cell]
    lines = body.splitlines()
    top = ['\n'.join(lines[n.lineno - 1:n.end_lineno]) for n in tree.body if isinstance(n, imports)]
    off = {**cell, 'source': '#| eval: false\n' + src}
    if not top: return [off]
    return [{'cell_type': 'code', 'id': f"{cell.get('id', 'c')}-imports", 'metadata': {}, 'execution_count': None,
             'outputs': [], 'source': '#| include: false\n' + '\n'.join(top)}, off]


def sources(nbs, dst):
    "A copy of the notebooks folder `nbs` in `dst` for nbdev's docs preprocessing (`isolate_imports`); no data_cache."
    nbs, dst = Path(nbs), Path(dst)
    if dst.exists(): shutil.rmtree(dst)
    shutil.copytree(nbs, dst, ignore=shutil.ignore_patterns('data_cache', '.*', '_*'))
    isolated = []
    for nb in sorted(dst.glob('*.ipynb')):
        d, cells = json.loads(nb.read_text()), []
        for i, c in enumerate(d['cells']):
            new = isolate_imports(c)
            if new != [c]: isolated.append(f'{nb.name} cell {i}')
            cells += new
        d['cells'] = cells
        nb.write_text(json.dumps(d, indent=1, ensure_ascii=False))
    if isolated: print(f'docs/prepare.py: not run by the docs build (imports and other code): {", ".join(isolated)}')
    return isolated


def _options(src):
    "Split the leading `#|` option lines off a cell: ({key: value}, the rest)."
    lines, opts = src.splitlines(keepends=True), {}
    i = 0
    while i < len(lines) and (lines[i].startswith('#|') or (opts and not lines[i].strip())):
        if lines[i].startswith('#|'):
            k, _, v = lines[i][2:].partition(':')
            opts[k.strip()] = v.strip().strip('"\'').lower()
        i += 1
    return opts, ''.join(lines[i:])


def _frontmatter(src):
    "title and description of nbdev's front-matter raw cell (simple YAML: a key per line, folded continuation lines)."
    import yaml
    body = src.strip()
    if not body.startswith('---'): return None
    try: d = yaml.safe_load(body.strip('-').strip()) or {}
    except yaml.YAMLError: return None
    return d if isinstance(d, dict) and 'title' in d else None


def _html_attrs(attrs):
    'quarto\'s `{key="v" .class #id}` as HTML attributes.'
    out = []
    for m in re.finditer(r'([\w-]+)="([^"]*)"|\.([\w-]+)|#([\w-]+)', attrs):
        if m.group(1): out.append(f'{m.group(1)}="{m.group(2)}"')
        elif m.group(3): out.append(f'class="{m.group(3)}"')
        elif m.group(4): out.append(f'id="{m.group(4)}"')
    return ' '.join(out)


class Links:
    """Rewrites links to notebooks and to the hosted docs as links between the local pages. `anchors`: the show_doc
    entries of each page; nbdev links a method that has no entry of its own (`model.html#rtdmodel.forward`): its class's."""
    def __init__(self, pages: dict, doc_url: str, anchors: dict | None = None):
        self.pages, self.doc_url, self.anchors = pages, doc_url.rstrip('/'), anchors or {}

    def url(self, u):
        if self.doc_url and u.startswith(self.doc_url + '/'):
            u = u[len(self.doc_url) + 1:] or 'index.html'
            if u.endswith('/'): u += 'index.html'
        m = re.match(r'^([^/:#?]+)\.ipynb(#.*)?$', u)
        if m and m.group(1) in self.pages: u = self.pages[m.group(1)] + '.html' + (m.group(2) or '')
        page, _, frag = u.partition('#')
        have = self.anchors.get(page.removesuffix('.html'))
        if frag and have is not None and frag not in have and frag.rpartition('.')[0] in have:
            u = f"{page}#{frag.rpartition('.')[0]}"
        return u

    def __call__(self, md: str) -> str:
        # quarto's attributes on a link: [text](url){attrs} -> <a href=url attrs>text</a>
        md = re.sub(r'\[([^\]\n]*)\]\(([^)\s]+)\)\{([^}\n]*)\}',
                    lambda m: f'<a href="{self.url(m.group(2))}" {_html_attrs(m.group(3))}>{m.group(1)}</a>', md)
        return re.sub(r'(\]\()([^)\s]+)(\))', lambda m: m.group(1) + self.url(m.group(2)) + m.group(3), md)


def _entry(md: str):
    "The name of a show_doc entry (a markdown output that starts with a rule, then `### name`), lower case; or None."
    if not md.lstrip().startswith('---'): return None
    m = re.search(r'^#{2,4} ([\w.]+)[ \t]*$', md, flags=re.M)
    return m.group(1).lower() if m else None


def _markdown_outputs(c):
    for o in c.get('outputs', []):
        md = o.get('data', {}).get('text/markdown')
        if md is not None: yield o, (''.join(md) if isinstance(md, list) else md)


def entries(nb: Path) -> set:
    "The show_doc entries of a processed notebook (their anchors)."
    return {e for c in json.loads(nb.read_text())['cells'] for _, md in _markdown_outputs(c) if (e := _entry(md))}


def _md_output(o, md, fix):
    "A markdown output (show_doc's) with local links; its leading rule carries the anchor nbdev's links name."
    name = _entry(md)
    md = fix(md)
    if md.lstrip().startswith('---'):   # show_doc's rule (and it would read as YAML front matter)
        md = (f'<hr id="{name}">' if name else '<hr>') + '\n' + md.lstrip()[3:]
    o['data']['text/markdown'] = md


def process(nb: Path, pages: dict, fix: Links) -> Path:
    d = json.loads(nb.read_text())
    cells = []
    for c in d['cells']:
        for k in set(c) - CELL_KEYS: del c[k]
        c.setdefault('metadata', {}).pop('execution', None)
        src = _src(c)
        if c['cell_type'] == 'raw':
            fm = _frontmatter(src)
            if fm is None: continue
            desc = ' '.join(str(fm.get('description') or '').split())
            c = {'cell_type': 'markdown', 'id': c.get('id', 'title'), 'metadata': {},
                 'source': f"# {fm['title']}\n\n" + (f'*{desc}*\n' if desc else '')}
            cells.append(c); continue
        opts, body = _options(src)
        if c['cell_type'] == 'code':
            tags = [TAG_OF[(k, v)] for k, v in opts.items() if (k, v) in TAG_OF]
            if tags: c['metadata']['tags'] = sorted(set(c['metadata'].get('tags', [])) | set(tags))
            for o, md in list(_markdown_outputs(c)): _md_output(o, md, fix)
        elif c['cell_type'] == 'markdown':
            body = fix(body)
        c['source'] = body
        cells.append(c)
    d['cells'] = cells
    d.setdefault('metadata', {}).setdefault('language_info', {'name': 'python'})
    out = nb.with_name(pages[nb.stem] + '.ipynb')
    if out != nb: nb.unlink()
    out.write_text(json.dumps(d, indent=1, ensure_ascii=False))
    return out


TOCTREE = '```{{toctree}}\n:hidden:\n:caption: {caption}\n:maxdepth: 1\n\n{entries}\n```\n'


def toctree_cells(order, pages):
    "Hidden toctrees for the sidebar: the library notebooks, then the walkthroughs."
    mods = [pages[s] for s in order if s != 'index' and _number(s)]
    walks = [pages[s] for s in order if s != 'index' and not _number(s)]
    return [{'cell_type': 'markdown', 'id': f'toctree-{i}', 'metadata': {},
             'source': TOCTREE.format(caption=cap, entries='\n'.join(entries))}
            for i, (cap, entries) in enumerate((('Library', mods), ('Walkthroughs', walks))) if entries]


def site(proc=ROOT/'_proc'):
    from nbdev.config import get_config
    proc = Path(proc)
    cfg = get_config()
    stems = [p.stem for p in proc.glob('*.ipynb')]
    if not stems: sys.exit(f'docs/prepare.py: no notebooks in {proc}')
    pages = {s: page_name(s) for s in stems}
    clash = {p for p in pages.values() if list(pages.values()).count(p) > 1}
    if clash: sys.exit(f'docs/prepare.py: notebooks that nbdev gives the same page: {sorted(clash)}')
    index_md = ''
    if (ROOT/cfg.nbs_path/'index.ipynb').exists():
        index_md = '\n'.join(_src(c) for c in json.loads((ROOT/cfg.nbs_path/'index.ipynb').read_text())['cells']
                             if c['cell_type'] == 'markdown')
    order = reading_order(stems, index_md)
    anchors = {pages[s]: entries(proc/f'{s}.ipynb') for s in stems}
    fix = Links(pages, f"{cfg.doc_host or ''}{cfg.doc_baseurl or ''}", anchors)
    for s in stems: process(proc/f'{s}.ipynb', pages, fix)
    index = proc/'index.ipynb'
    if not index.exists():   # a partial build (DOCS_FILE_GLOB / _RE) without the landing page: a stub
        index.write_text(json.dumps({'cells': [{'cell_type': 'markdown', 'id': 'title', 'metadata': {},
                                                 'source': '# electra_gdes (partial build)\n'}],
                                     'metadata': {'language_info': {'name': 'python'}}, 'nbformat': 4,
                                     'nbformat_minor': 5}))
    d = json.loads(index.read_text())
    d['cells'] += toctree_cells(order, pages)
    index.write_text(json.dumps(d, indent=1, ensure_ascii=False))
    print(f'docs/prepare.py: {len(stems)} notebooks ready for Sphinx in {proc.name}/')


if __name__ == '__main__':
    cmd, *args = sys.argv[1:] or ['site']
    if cmd == 'sources': sources(*args)
    elif cmd == 'site': site(*args)
    else: sys.exit(__doc__)
