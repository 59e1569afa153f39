"""Convert notebooks to and from a plain-text "percent" form, for editing notebooks in a text editor.

    python tools/nbpercent.py to-py nbs/00_config.ipynb > /tmp/00_config.py
    python tools/nbpercent.py to-nb /tmp/00_config.py nbs/00_config.ipynb

Cells are separated by lines `# %%` (code) and `# %% [markdown]` (markdown; each line starts with `# `).
Outputs are dropped: run `nbdev-clean` afterwards, the notebooks are kept without outputs.
"""
import os, sys, nbformat

MD, CODE = '# %% [markdown]', '# %%'

def to_py(nb_path):
    nb = nbformat.read(nb_path, as_version=4)
    parts = []
    for c in nb.cells:
        if c.cell_type == 'markdown':
            parts.append(MD + '\n' + '\n'.join(('# ' + l).rstrip() for l in c.source.splitlines()))
        else: parts.append(CODE + '\n' + c.source)
    return '\n\n'.join(parts) + '\n'

def to_nb(py_path, nb_path):
    cells, kind, lines = [], None, []
    def flush():
        if kind is None: return
        src = '\n'.join(lines).strip('\n')
        if kind == 'md':
            src = '\n'.join(l[2:] if l.startswith('# ') else l.lstrip('#') for l in src.splitlines())
            cells.append(nbformat.v4.new_markdown_cell(src))
        else: cells.append(nbformat.v4.new_code_cell(src))
    for line in open(py_path).read().splitlines():
        if line.strip() == MD or line.strip() == CODE:
            flush(); kind, lines = ('md' if line.strip() == MD else 'code'), []
        else: lines.append(line)
    flush()
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata = {'kernelspec': {'display_name': 'python3', 'language': 'python', 'name': 'python3'}}
    for i, c in enumerate(nb.cells): c.id = f'c{i:03d}'
    # written to a temporary file and renamed, so a concurrent nbdev-export never reads half a notebook
    tmp = nb_path + '.tmp'
    nbformat.write(nb, tmp)
    os.replace(tmp, nb_path)

if __name__ == '__main__':
    cmd, *args = sys.argv[1:]
    if cmd == 'to-py': sys.stdout.write(to_py(args[0]))
    elif cmd == 'to-nb': to_nb(*args)
    else: sys.exit(__doc__)
