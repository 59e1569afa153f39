"""No tracked file names a path that exists on one machine only: a checkout's or a home folder, a temporary folder of
one run. Such a path made the test suite pass only in the folder it was written in (issue 15)."""
import re, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# folders that hold checkouts, homes and per-run temporary files; `/tmp/X.py` in a documented command stays allowed
MACHINE_PATH = re.compile(r'(?<![\w.~$/-])/(?:(?:work|root|home|Users|mnt|scratch)/[\w.-]+|tmp/(?:tmp|pytest-of-|bash_jobs)[\w.-]+)')

def machine_paths(text: str, own=()) -> list[str]:
    "The machine-specific absolute paths in `text`: `MACHINE_PATH` matches and any of the folders `own`."
    found = [m.group(0) for m in MACHINE_PATH.finditer(text)]
    return found + [o for o in own if o and o in text]

def test_the_pattern_finds_what_it_is_for():
    # the examples are put together here, so that this file does not name them itself
    work, home, users, tmp = ('/' + d for d in ('work/main', 'home/ana', 'Users/bo', 'tmp/tmpab12_x'))
    assert machine_paths(f"BIN = Path('{work}/.venv/bin')") == [work]
    assert machine_paths(f'see {home}/electra and {users}/x') == [home, users]
    assert machine_paths(f'"{tmp}/out"') == [tmp]
    assert machine_paths('python tools/nbpercent.py to-py nbs/X.ipynb > /tmp/X.py') == []
    assert machine_paths('checkpoints/pretrain/run and ../shared/REFERENCE.md') == []
    assert machine_paths('x = 1', own=['/some/checkout']) == [] and machine_paths('/some/checkout/a', own=['/some/checkout'])

def test_no_tracked_file_names_a_machine_path():
    files = subprocess.run(['git', 'ls-files', '-z'], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split('\0')
    own = [str(ROOT), str(Path(sys.executable).parent), str(Path.home())]
    bad = []
    for f in filter(None, files):
        try: text = (ROOT/f).read_text(encoding='utf-8')
        except (UnicodeDecodeError, FileNotFoundError, IsADirectoryError): continue   # binary (a figure) or deleted
        bad += [f'{f}: {p}' for p in machine_paths(text, own)]
    assert not bad, 'tracked files name paths of one machine (use paths relative to the repo, or sys.executable):\n' + '\n'.join(bad)
