"""Faults of the cache folder end as the output folder's do, made for real: a full `--cache_dir` (a small tmpfs, filled)
and a read-only one (a read-only bind mount) give one message naming the path and what to do, no traceback, no run
folder that blocks a rerun, no lock left; a complete cache in a read-only folder is used as it is. The mounts are made
in a private mount namespace (`unshare -m`) and vanish with the process; without that capability the tests skip."""
import shutil, subprocess
from pathlib import Path
import pytest
from cli_helpers import BIN, ENV, script, tiny_pretrain_args, tiny_corpus, checksums
from electra_gdes.run_lock import lock_path

def _in_namespace(setup: str, args, timeout=600) -> subprocess.CompletedProcess:
    "`electra-pretrain args` in a private mount namespace, after the shell commands `setup` (mounts)."
    sh = f'set -e\n{setup}\nexec "$@"'
    return subprocess.run(['unshare', '-m', '--propagation', 'private', 'sh', '-c', sh, 'sh', str(BIN/'electra-pretrain'),
                           *map(str, args)], env=ENV, capture_output=True, text=True, timeout=timeout)

@pytest.fixture(scope='module')
def can_mount(tmp_path_factory):
    probe = tmp_path_factory.mktemp('probe')
    if shutil.which('unshare') is None: pytest.skip('no unshare on this machine')
    r = subprocess.run(['unshare', '-m', '--propagation', 'private', 'sh', '-c',
                        f'mount -t tmpfs -o size=64k tmpfs {probe} && mount --bind {probe} {probe} && mount -o remount,ro,bind {probe}'],
                       capture_output=True, text=True)
    if r.returncode != 0: pytest.skip(f'cannot mount in a private namespace here (no CAP_SYS_ADMIN?): {r.stderr.strip()[-200:]}')

def _one_message(r, *words):
    assert r.returncode == 1 and 'Traceback' not in r.stderr, r.stderr[-3000:]
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith('electra-pretrain: error: ') and all(w in line for w in words), line
    return line

def _no_blocking_leftovers(d):
    run = d/'out'/'r'
    assert not lock_path(run).exists()
    assert not run.exists() or not any(run.iterdir())   # nothing that makes a rerun refuse

def test_a_full_cache_dir_is_one_message(tmp_path, can_mount):
    tiny_corpus(tmp_path); cache = tmp_path/'cache'; cache.mkdir()
    fill = f'mount -t tmpfs -o size=256k tmpfs {cache}\nhead -c 1000000 /dev/zero > {cache}/filler 2>/dev/null || true'
    r = _in_namespace(fill, tiny_pretrain_args(tmp_path, steps=2))
    line = _one_message(r, 'Could not write the example cache to', str(cache/'pretrain'), 'No space left on device',
                        'free space on that disk or choose another --cache_dir')
    assert '--output_dir' not in line
    _no_blocking_leftovers(tmp_path)

def test_a_read_only_empty_cache_dir_is_one_message(tmp_path, can_mount):
    tiny_corpus(tmp_path); cache = tmp_path/'cache'; cache.mkdir()
    r = _in_namespace(f'mount --bind {cache} {cache}\nmount -o remount,ro,bind {cache}', tiny_pretrain_args(tmp_path, steps=2))
    _one_message(r, 'Could not write the example cache to', str(cache/'pretrain'), 'Read-only file system',
                 'the file system is read-only: choose another --cache_dir')
    assert list(cache.iterdir()) == []
    _no_blocking_leftovers(tmp_path)

def test_a_complete_cache_in_a_read_only_folder_is_used(tmp_path, can_mount):
    first = script('electra-pretrain', *tiny_pretrain_args(tmp_path, run_name='first', steps=2))
    assert first.returncode == 0, first.stderr[-3000:]
    cache = tmp_path/'cache'
    before = checksums(cache)
    r = _in_namespace(f'mount --bind {cache} {cache}\nmount -o remount,ro,bind {cache}', tiny_pretrain_args(tmp_path, steps=2))
    assert r.returncode == 0 and 'damaged' not in r.stderr, r.stderr[-3000:]
    assert checksums(cache) == before and (tmp_path/'out'/'r'/'discriminator').is_dir()

def test_an_unwritable_cache_dir_is_one_message(tmp_path, can_mount):
    "EACCES for real: the run as user nobody (root may write anywhere) into a cache folder nobody may not write."
    if shutil.which('setpriv') is None: pytest.skip('no setpriv on this machine')
    # the console script as the run starts it (in a path with a space it is a shell wrapper that execs the interpreter)
    probe = subprocess.run(['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', str(BIN/'electra-pretrain'), '--help'],
                           capture_output=True, text=True, cwd='/')
    if probe.returncode != 0: pytest.skip(f'user nobody cannot run this environment here: {probe.stderr.strip()[-200:]}')
    import tempfile
    d = Path(tempfile.mkdtemp(prefix='cache-eacces-'))   # /tmp: a folder nobody may enter (pytest's tmp_path is private)
    try:
        d.chmod(0o755); tiny_corpus(d)
        for p in (d/'corpus', *(d/'corpus').iterdir()): p.chmod(0o755 if p.is_dir() else 0o644)
        (d/'cache').mkdir(mode=0o755); (d/'out').mkdir(); (d/'out').chmod(0o777); (d/'home').mkdir(); (d/'home').chmod(0o777)
        env = {**ENV, 'HOME': str(d/'home'), 'HF_HOME': str(d/'home'/'hf'), 'MPLCONFIGDIR': str(d/'home'/'mpl')}
        r = subprocess.run(['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', str(BIN/'electra-pretrain'),
                            *map(str, tiny_pretrain_args(d, steps=2))], env=env, capture_output=True, text=True, timeout=600, cwd=d)
        _one_message(r, 'Could not write the example cache to', str(d/'cache'/'pretrain'), 'Permission denied',
                     'choose a --cache_dir you may write to')
        assert list((d/'cache').iterdir()) == []
        _no_blocking_leftovers(d)
    finally: shutil.rmtree(d, ignore_errors=True)
