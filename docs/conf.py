# Sphinx configuration of the docs site (scripts/build_docs.sh). The sources are nbdev's processed notebooks in _proc/
# after docs/prepare.py (pages named as nbdev names them, a hidden toctree in index in reading order); nothing is
# executed: the stored outputs and figures are shown. Math is MathJax 3 from the django-static-mathjax wheel (static
# files only), copied into _static, so the site works offline and from file://.
import shutil
from pathlib import Path

project = 'electra_gdes'
author = 'electra_gdes contributors'
extensions = ['myst_nb']
root_doc = 'index'
exclude_patterns = ['_*', '.*', 'jupyter_execute', 'data_cache', '**/.ipynb_checkpoints', 'llms.txt']
suppress_warnings = ['mystnb.unknown_mime_type', 'misc.highlighting_failure', 'myst.header']

# myst-nb: the stored outputs, nothing run; markdown outputs (show_doc) parsed as MyST so tables and math work
nb_execution_mode = 'off'
nb_render_markdown_format = 'myst'
nb_merge_streams = True
nb_ipywidgets_js = {}   # no widget manager from a CDN (a stored progress-bar widget shows as its text)
myst_enable_extensions = ['dollarmath', 'amsmath', 'colon_fence', 'html_image']
myst_all_links_external = True   # docs/prepare.py has made every link a plain URL (page.html#anchor) already
myst_heading_anchors = 0

html_theme = 'sphinx_book_theme'
html_title = 'electra_gdes'
html_theme_options = {
    'home_page_in_toc': True,           # the landing page is the first entry of the sidebar
    'show_navbar_depth': 1,
    'show_toc_level': 2,
    'use_download_button': False,
    'use_fullscreen_button': False,
    'use_repository_button': False,
}
html_show_sourcelink = False
html_copy_source = False
html_last_updated_fmt = None
html_static_path = []

# math offline: tex-chtml.js with its TeX extensions and CHTML fonts, from the installed MathJax 3.2.2 files
mathjax_path = 'mathjax/tex-chtml.js'
MATHJAX_PARTS = ('tex-chtml.js', 'input/tex/extensions', 'output/chtml/fonts/woff-v2')


def mathjax_es5() -> Path:
    import mathjax   # the django-static-mathjax wheel: mathjax/static/mathjax/es5 is MathJax's own build
    es5 = Path(mathjax.__file__).parent/'static'/'mathjax'/'es5'
    if not (es5/'tex-chtml.js').exists(): raise FileNotFoundError(f'MathJax not found in {es5}')
    return es5


def _copy_mathjax(app, exception):
    if exception is not None or app.builder.format != 'html': return
    src, dst = mathjax_es5(), Path(app.outdir)/'_static'/'mathjax'
    for part in MATHJAX_PARTS:
        s, d = src/part, dst/part
        d.parent.mkdir(parents=True, exist_ok=True)
        if s.is_dir(): shutil.copytree(s, d, dirs_exist_ok=True)
        else: shutil.copy2(s, d)


def setup(app):
    mathjax_es5()   # fail at the start of the build, not at its end, when MathJax is not installed
    app.connect('build-finished', _copy_mathjax)
