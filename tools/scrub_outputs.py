"""Make executed notebooks fit to commit: machine-specific paths in their outputs become placeholders (the checkout's
own folder is dropped, temporary folders become `<tmp>`, home folders `~/`), and with `--drop-stderr` the stderr
streams (warnings, progress redraws) are removed. Exits 1 naming any machine path it could not replace.

    python tools/scrub_outputs.py [--drop-stderr] nbs/X.ipynb ...
"""
import re, sys
from pathlib import Path
import nbformat

ROOT = Path(__file__).resolve().parents[1]
SUBS = [(re.compile(re.escape(str(ROOT)) + '/?'), ''), (re.compile(r'/tmp/(?:tmp|pytest-of-)[\w.-]+'), '<tmp>'),
        (re.compile(r'/(root|home/\w+)/'), '~/')]
LEFT = re.compile(r'/(?:tmp/tmp|tmp/pytest-of-|work/|root/|home/)\S*')

def scrub(s: str) -> str:
    for pat, rep in SUBS: s = pat.sub(rep, s)
    return s

def scrub_notebook(path, drop_stderr=False) -> list:
    "Scrub the outputs of the notebook at `path` in place; the machine paths left (none when all went well)."
    nb = nbformat.read(path, as_version=4)
    for c in nb.cells:
        if drop_stderr and 'outputs' in c: c.outputs = [o for o in c.outputs if not (o.output_type == 'stream' and o.name == 'stderr')]
        for o in c.get('outputs', []):
            if 'text' in o: o['text'] = scrub(o['text'])
            for k in ('text/plain', 'text/markdown', 'text/html'):
                if k in o.get('data', {}): o['data'][k] = scrub(o['data'][k])
            if 'traceback' in o: o['traceback'] = [scrub(t) for t in o['traceback']]
    nbformat.write(nb, path)
    return [m for c in nb.cells for o in c.get('outputs', []) for m in LEFT.findall(str(o))]

if __name__ == '__main__':
    args = sys.argv[1:]
    drop = '--drop-stderr' in args
    left = {p: l for p in (a for a in args if a != '--drop-stderr') if (l := scrub_notebook(p, drop))}
    if left: sys.exit('machine paths left in the outputs: ' + '; '.join(f'{p}: {l[:3]}' for p, l in left.items()))
