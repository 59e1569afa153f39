"""The example cache is checked at every load, through the installed `electra-pretrain`: garbled bytes in the Arrow
file or a truncated one are found, named in a warning and rebuilt (the run trains on the corpus's own examples); a
`.building-*` folder left by a killed build is removed; SIGTERM during a build says what it left and leaves no partial
cache."""
import json, os, signal, socket, subprocess, sys, time
from pathlib import Path
import datasets, pytest
from cli_helpers import BIN, ENV, script, tiny_pretrain_args, tiny_corpus
from electra_gdes.data import CACHE_DIGEST, cache_problem
from electra_gdes.run_lock import lock_path

@pytest.fixture(scope='module')
def built(tmp_path_factory):
    "A finished 2-step run; its cache's examples."
    d = tmp_path_factory.mktemp('cache')
    r = script('electra-pretrain', *tiny_pretrain_args(d, steps=2))
    assert r.returncode == 0, r.stderr[-3000:]
    (cache,) = (d/'cache'/'pretrain').iterdir()
    return d, cache, [list(x) for x in datasets.load_from_disk(str(cache))['input_ids']]

def _rerun(d, name):
    return script('electra-pretrain', *tiny_pretrain_args(d, run_name=name, steps=2))

def _arrow(cache): return next(cache.glob('*.arrow'))

def _check_rebuilt(r, d, cache, examples, what):
    assert r.returncode == 0, r.stderr[-3000:]
    assert f'The example cache {cache} is damaged: {what}' in r.stderr and 'Rebuilding it.' in r.stderr, r.stderr[-3000:]
    assert cache_problem(cache) is None
    assert [list(x) for x in datasets.load_from_disk(str(cache))['input_ids']] == examples
    assert sorted(p.name for p in cache.parent.iterdir()) == [cache.name]   # nothing aside, nothing half-built

def test_a_sound_cache_is_used_without_a_word(built):
    d, cache, examples = built
    digest = json.loads((cache/CACHE_DIGEST).read_text())
    assert digest['algorithm'] == 'xxh3_128' and _arrow(cache).name in digest['files']
    before = _arrow(cache).stat().st_mtime_ns
    r = _rerun(d, 'sound')
    assert r.returncode == 0 and 'damaged' not in r.stderr and _arrow(cache).stat().st_mtime_ns == before

def test_garbled_bytes_in_the_arrow_file_are_found_and_rebuilt(built):
    d, cache, examples = built
    arrow = _arrow(cache)
    data = bytearray(arrow.read_bytes())
    mid = len(data) // 2
    data[mid:mid + 400] = os.urandom(400)   # 400 bytes overwritten inside the file, its size unchanged
    arrow.write_bytes(bytes(data))
    _check_rebuilt(_rerun(d, 'garbled'), d, cache, examples, f'the content of {arrow.name} differs from its digest')

def test_a_truncated_arrow_file_is_found_and_rebuilt(built):
    d, cache, examples = built
    arrow = _arrow(cache)
    size = arrow.stat().st_size
    with open(arrow, 'r+b') as f: f.truncate(size - 1000)
    r = _rerun(d, 'truncated')
    _check_rebuilt(r, d, cache, examples, f'{arrow.name} has {size - 1000:,} bytes, its digest says {size:,}')
    assert 'Traceback' not in r.stderr

def test_a_cache_without_a_digest_is_rebuilt(built):
    d, cache, examples = built
    (cache/CACHE_DIGEST).unlink()   # an earlier version's cache, or a copy cut short
    _check_rebuilt(_rerun(d, 'nodigest'), d, cache, examples, f'it has no {CACHE_DIGEST}')

def test_a_killed_builds_folder_is_removed(tmp_path):
    tiny_corpus(tmp_path)
    gone = subprocess.Popen([sys.executable, '-c', 'pass']); gone.wait()   # a pid that has ended, as a kill -9'd build's
    left = tmp_path/'cache'/'pretrain'/f".building-{socket.gethostname()}-{gone.pid}-abc123"
    (left/'ds').mkdir(parents=True); (left/'ds'/'data-00000-of-00001.arrow').write_bytes(b'\0' * 100_000)
    r = script('electra-pretrain', *tiny_pretrain_args(tmp_path, steps=2))
    assert r.returncode == 0, r.stderr[-3000:]
    assert f'Removed {left} (0.1 MB), left by a build that did not finish (pid {gone.pid}' in r.stderr
    assert not left.exists() and not [p for p in (tmp_path/'cache').rglob('.building-*')]

SLOW_SAVE = '''
import sys, time
from datasets import Dataset
real = Dataset.save_to_disk
def slow(self, path, **kw):   # the build writes part of its files, then takes long enough to be stopped
    real(self, path, **kw)
    print('SAVING', file=sys.stderr, flush=True); time.sleep(120)
Dataset.save_to_disk = slow
'''

def test_sigterm_during_the_cache_build_says_what_it_left(tmp_path):
    args = [*map(str, tiny_pretrain_args(tmp_path, steps=2))]
    code = SLOW_SAVE + f'from electra_gdes.pretrain import main\nmain({args!r})'
    p = subprocess.Popen([sys.executable, '-c', code], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    for line in p.stderr:
        lines.append(line)
        if line.strip() == 'SAVING': break
    assert list((tmp_path/'cache'/'pretrain').glob('.building-*')), 'the build folder exists while the build runs'
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=120)
    err = ''.join(lines) + err
    assert p.returncode == 143, err[-3000:]
    assert 'Traceback' not in err
    assert (f"Stopped by SIGTERM while building the example cache {tmp_path/'cache'/'pretrain'}/" in err
            and 'its partial build was removed and nothing half-written is left in the cache' in err), err[-2000:]
    assert list((tmp_path/'cache'/'pretrain').iterdir()) == []     # no build folder, no partial cache
    run = tmp_path/'out'/'r'
    assert not lock_path(run).exists() and not run.exists()
    again = script('electra-pretrain', *tiny_pretrain_args(tmp_path, steps=2))   # the next run builds it and trains
    assert again.returncode == 0, again.stderr[-3000:]
