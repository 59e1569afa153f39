"""Checks of the built docs site (_docs/), run by scripts/build_docs.sh after Sphinx; each names what is wrong.

- every notebook of nbs/ in the build has its page (named as nbdev names it: 03_rtd -> rtd.html);
- the landing page's sidebar links every page, in reading order (docs/prepare.py's `reading_order`);
- the search index (searchindex.js) exists and finds an API entry (`gumbel_sample`) on the page that documents it;
- API entries: each notebook's exported functions and classes have a show_doc entry (its anchor and signature) on its
  page, and the links between pages point at pages and anchors that exist;
- every figure stored in a notebook's outputs is an image on its page, and the image file is there;
- a page whose notebook has math loads MathJax from _static (the script, the TeX extensions and the fonts exist);
- nothing is loaded from the network: every script and stylesheet is local (the site works offline, from file://).

Usage: python docs/check_site.py [_docs]   (DOCS_FILE_GLOB / DOCS_FILE_RE: the notebooks a partial build has)
"""
import ast, json, os, re, sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from prepare import ROOT, notebook_order, page_name  # noqa: E402

API_NAME = 'gumbel_sample'   # a function of the library whose entry the search must find


def _cells(nb): return json.loads(Path(nb).read_text())['cells']
def _src(c): return ''.join(c['source']) if isinstance(c['source'], list) else c['source']


class Page:
    "What the checks read from a page of the built site (regular expressions: Sphinx's HTML is regular and this is fast)."
    def __init__(self, path):
        self.html = html = Path(path).read_text()
        i, j = html.find('<article'), html.rfind('</article>')
        self.article = html[i:j] if 0 <= i < j else ''
        self.ids = set(re.findall(r'\sid="([^"]+)"', html))
        self.links = re.findall(r'<a\s[^>]*?href="([^"]*)"', self.article)
        self.images = re.findall(r'<img\s[^>]*?src="([^"]*)"', self.article)
        self.scripts = re.findall(r'<script\s[^>]*?src="([^"]*)"', html)
        self.loads = list(self.scripts) + re.findall(r'<img\s[^>]*?src="([^"]*)"', html)
        for tag in re.findall(r'<link\s[^>]*>', html):
            rel, href = re.search(r'rel="([^"]*)"', tag), re.search(r'href="([^"]*)"', tag)
            if rel and href and {'stylesheet', 'preload', 'icon'} & set(rel.group(1).split()): self.loads.append(href.group(1))
        self.math = 'class="math' in self.article

    def entry(self, name):
        "The signature shown under show_doc's entry `name` (its rule carries the anchor), or None."
        m = re.search(rf'<hr id="{re.escape(name.lower())}"\s*/?>(.*?)<pre>(.*?)</pre>', self.html, flags=re.S)
        return re.sub(r'<[^>]+>', '', m.group(2)) if m and '<hr' not in m.group(1) else None

    def sidebar(self):
        "The pages the sidebar links, in order (the page itself as index.html on the landing page)."
        m = re.search(r'<nav class="[^"]*\bbd-docs-nav\b[^"]*".*?</nav>', self.html, flags=re.S)
        out = []
        for href in re.findall(r'<a class="reference[^"]*"[^>]*?href="([^"]*)"', m.group(0) if m else ''):
            href = href.split('#')[0] or 'index.html'
            if href not in out: out.append(href)
        return out


def exported_names(nb) -> list:
    "Top-level public functions and classes of a notebook's `#| export` cells (the entries show_doc makes)."
    names = []
    for c in _cells(nb):
        src = _src(c)
        if c['cell_type'] != 'code' or not re.match(r'#\|\s*exports?\b', src): continue
        try: tree = ast.parse(src)
        except SyntaxError: continue
        names += [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                  and not n.name.startswith('_')   # fastcore's @patch shows a method as `Class.name`: not counted
                  and not any('patch' in ast.unparse(d) for d in n.decorator_list)]
    return names


def _figures(nb) -> int:
    return sum('image/png' in o.get('data', {}) or 'image/svg+xml' in o.get('data', {})
               for c in _cells(nb) for o in c.get('outputs', []))


def _has_math(nb) -> bool:
    return any(re.search(r'\$[^$\n]+\$', _src(c)) for c in _cells(nb) if c['cell_type'] == 'markdown')


def search_terms(docs) -> dict:
    js = (Path(docs)/'searchindex.js').read_text()
    return json.loads(js[js.index('(') + 1:js.rindex(')')])


def _stem(word):
    import snowballstemmer
    return snowballstemmer.stemmer('english').stemWord(word.lower())


def check(docs=ROOT/'_docs', nbs=ROOT/'nbs', glob='', regex='') -> list:
    "Problems of the site in `docs` built from the notebooks of `nbs` (glob / regex: a partial build); [] when none."
    docs, nbs = Path(docs), Path(nbs)
    problems = []
    order = notebook_order(nbs, glob, regex)
    pages = {s: page_name(s) + '.html' for s in order}
    # every notebook has its page
    for s, p in pages.items():
        if not (docs/p).exists(): problems.append(f'{s}.ipynb has no page {p}')
    if not (docs/'index.html').exists(): return problems + ['no landing page index.html']
    # the sidebar: every page, in reading order
    want = ['index.html'] + [pages[s] for s in order if s != 'index']
    got = Page(docs/'index.html').sidebar()
    if got != want: problems.append(f'the sidebar of index.html lists {got}, not {want} (reading order)')
    # the search index
    if not (docs/'searchindex.js').exists(): problems.append('no searchindex.js')
    else:
        idx = search_terms(docs)
        defining = [s for s in order if (nbs/f'{s}.ipynb').exists() and API_NAME in exported_names(nbs/f'{s}.ipynb')]
        if defining:
            doc = page_name(defining[0])
            hits = idx['terms'].get(_stem(API_NAME), [])
            hits = hits if isinstance(hits, list) else [hits]
            if doc not in idx['docnames'] or idx['docnames'].index(doc) not in hits:
                problems.append(f'the search index does not find {API_NAME} on {doc}.html')
        elif not glob and not regex:
            problems.append(f'no notebook exports {API_NAME} (docs/check_site.py API_NAME names an entry to search for)')
        for s in order:
            if (docs/pages[s]).exists() and page_name(s) not in idx['docnames']:
                problems.append(f'{pages[s]} is not in the search index')
    # per page: API entries, figures, math, links, nothing from the network
    built = {pages[s]: Page(docs/pages[s]) for s in order if (docs/pages[s]).exists()}
    for s in order:
        if pages[s] not in built: continue
        page = built[pages[s]]
        if _number(s):
            for name in exported_names(nbs/f'{s}.ipynb'):
                sig = page.entry(name)
                if sig is None or name not in sig: problems.append(f'{pages[s]} has no API entry (show_doc) for {name}')
        n_fig = _figures(nbs/f'{s}.ipynb')
        stored = [i for i in page.images if i.startswith('_images/')]
        if len(stored) < n_fig: problems.append(f'{pages[s]} shows {len(stored)} of the {n_fig} stored figures')
        for i in stored:
            if not (docs/i).exists(): problems.append(f'{pages[s]}: image {i} is missing')
        if _has_math(nbs/f'{s}.ipynb'):
            if not page.math: problems.append(f'{pages[s]}: the math of the notebook is not marked as math')
            mj = [src for src in page.scripts if 'mathjax' in src.lower()]
            if mj != ['_static/mathjax/tex-chtml.js']:
                problems.append(f'{pages[s]} loads MathJax from {mj}, not _static/mathjax/tex-chtml.js')
        for url in page.loads:
            if re.match(r'^(https?:)?//', url): problems.append(f'{pages[s]} loads {url} from the network')
    for part in ('tex-chtml.js', 'input/tex/extensions/ams.js', 'output/chtml/fonts/woff-v2/MathJax_Main-Regular.woff'):
        if not (docs/'_static'/'mathjax'/part).exists(): problems.append(f'_static/mathjax/{part} is missing')
    # links between pages point at pages and anchors that exist (a page a partial build leaves out is not checked)
    every_page = {page_name(nb.stem) + '.html' for nb in nbs.glob('*.ipynb')}
    for p, page in built.items():
        for href in page.links:
            m = re.match(r'^([\w-]+\.html)?(?:#(.+))?$', href)
            if not m or not href: continue
            target = m.group(1) or p
            if target not in built:
                if target not in every_page and not (docs/target).exists(): problems.append(f'{p} links {href}: no such page')
                continue
            if m.group(2) and m.group(2) not in built[target].ids: problems.append(f'{p} links {href}: no such anchor')
    return problems


def _number(stem): return re.match(r'^\d+', stem) is not None


def main(docs=ROOT/'_docs'):
    glob, regex = os.environ.get('DOCS_FILE_GLOB', ''), os.environ.get('DOCS_FILE_RE', '')
    problems = check(docs, ROOT/'nbs', glob, regex)
    if problems:
        print('docs/check_site.py: the site has problems:\n  ' + '\n  '.join(problems), file=sys.stderr)
        sys.exit(1)
    n = len(notebook_order(ROOT/'nbs', glob, regex))
    print(f'docs/check_site.py: {n} pages, sidebar in reading order, search, API entries, figures, math, local links: ok')


if __name__ == '__main__':
    main(*sys.argv[1:])
