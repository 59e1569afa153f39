"""Disk and permission faults: a full disk during a checkpoint or log write removes the temporary file, keeps the
earlier checkpoints intact and ends with one message naming the path, what failed and what to do; an output dir that
is a file, lies under a file, or cannot be written to is refused before anything runs. (Tests may run as root, where
chmod does not stop a write: unwritable folders are simulated.)"""
import errno, os, subprocess, sys, textwrap
from pathlib import Path
import pytest, torch
import electra_gdes.logs as logs
from electra_gdes.files import OutputWriteError, check_writable, write_guard
from electra_gdes.train import pretrain_learner, fit_steps
from electra_gdes.logs import read_log
from electra_gdes.checkpoint import checkpoint_path, checkpoint_problem, latest_checkpoint, write_checkpoint
from test_grad_accum import word_data, cfg_for

from cli_helpers import BIN

SCRIPT = BIN/'electra-pretrain'
ENV = {**os.environ, 'HF_HUB_OFFLINE': '1', 'HF_DATASETS_OFFLINE': '1', 'TRANSFORMERS_OFFLINE': '1', 'OMP_NUM_THREADS': '1',
       'MPLBACKEND': 'Agg', 'TOKENIZERS_PARALLELISM': 'false'}

def _no_tmp_left(d: Path): return [p for p in Path(d).rglob('*') if '.tmp' in p.name]

def test_a_full_disk_during_a_checkpoint_keeps_the_earlier_one(tmp_path, monkeypatch):
    tok, ds = word_data()
    cfg = cfg_for(tmp_path, 'full', 1, checkpoint_fractions=(1/3, 1.0))   # checkpoints at steps 1 and 3
    calls = []
    real_fsync = os.fsync
    def fsync(fd):   # the first checkpoint (.pt and .sha256) is written, the next write finds the disk full
        calls.append(fd)
        if len(calls) > 2: raise OSError(errno.ENOSPC, 'No space left on device')
        return real_fsync(fd)
    monkeypatch.setattr(os, 'fsync', fsync)
    learn = pretrain_learner(cfg, ds, tok, device=torch.device('cpu'))
    with pytest.raises(OutputWriteError) as e:
        fit_steps(learn)
    monkeypatch.undo()
    msg, failed = str(e.value), checkpoint_path(cfg.run_dir, 3)
    assert f'Could not write a checkpoint to {failed}' in msg and 'No space left on device' in msg, msg
    assert 'free space' in msg and '--output_dir' in msg and 'intact' in msg, msg
    assert _no_tmp_left(cfg.run_dir) == [] and not failed.exists()
    assert checkpoint_problem(checkpoint_path(cfg.run_dir, 1)) is None
    assert latest_checkpoint(cfg.run_dir) == checkpoint_path(cfg.run_dir, 1)

def test_dev_full_gives_enospc_and_the_temporary_file_goes(tmp_path):
    "A real ENOSPC: the checkpoint's temporary file is a link to /dev/full."
    if not Path('/dev/full').exists(): pytest.skip('no /dev/full on this system')
    p = checkpoint_path(tmp_path, 5)
    write_checkpoint({'format': 1, 'step': 5, 'w': torch.arange(3.)}, p)
    p2 = checkpoint_path(tmp_path, 6)
    tmp = p2.with_name('.tmp-' + p2.name); tmp.symlink_to('/dev/full')
    with pytest.raises(OutputWriteError, match='No space left on device') as e:
        write_checkpoint({'format': 1, 'step': 6, 'w': torch.zeros(3)}, p2)
    assert str(p2) in str(e.value)
    assert not tmp.exists() and not tmp.is_symlink() and not p2.exists()
    assert checkpoint_problem(p) is None and latest_checkpoint(tmp_path) == p

def test_a_full_disk_during_the_log_says_so(tmp_path, monkeypatch):
    tok, ds = word_data()
    cfg = cfg_for(tmp_path, 'log', 1)
    learn = pretrain_learner(cfg, ds, tok, device=torch.device('cpu'))
    def full(*a, **k): raise OSError(errno.ENOSPC, 'No space left on device')
    monkeypatch.setattr(logs.csv.DictWriter, 'writerow', full)
    with pytest.raises(OutputWriteError) as e: fit_steps(learn)
    assert f"Could not write the training log to {cfg.run_dir/'log.csv'}: No space left on device" in str(e.value)

def test_a_failed_rewrite_of_the_log_leaves_it_and_no_tmp(tmp_path, monkeypatch):
    log = tmp_path/'log.csv'
    logs._rewrite_log(log, [{'step': 1, **{k: 0.5 for k in logs.LOG_COLUMNS[1:]}}])
    before = log.read_bytes()
    monkeypatch.setattr(os, 'replace', lambda *a: (_ for _ in ()).throw(OSError(errno.EROFS, 'Read-only file system')))
    with pytest.raises(OutputWriteError, match='read-only'): logs._rewrite_log(log, [])
    assert log.read_bytes() == before and _no_tmp_left(tmp_path) == []

def test_output_dir_checks(tmp_path, monkeypatch):
    f = tmp_path/'a_file'; f.write_text('x')
    for bad in (f, f/'run'):
        with pytest.raises(OutputWriteError, match='is a file, not a folder') as e: check_writable(bad)
        assert str(bad) in str(e.value) and 'another --output_dir' in str(e.value)
    assert check_writable(tmp_path/'new'/'out').is_dir()
    import tempfile
    def denied(*a, **k): raise PermissionError(errno.EACCES, 'Permission denied')
    monkeypatch.setattr(tempfile, 'NamedTemporaryFile', denied)
    with pytest.raises(OutputWriteError) as e: check_writable(tmp_path/'ro')
    assert f'--output_dir {tmp_path/"ro"} is not writable: Permission denied' in str(e.value)
    assert '--output_dir' in str(e.value).split('Permission denied')[1]

def _cli(tmp_path, *extra, prelude=''):
    corpus = tmp_path/'corpus.txt'
    corpus.write_text('\n\n'.join(f'Document {i}. ' + 'The union is strong and the people expect us to act. ' * 8 for i in range(8)))
    args = ['--size', 'tiny', '--corpus', str(corpus), '--cache_dir', str(tmp_path/'cache'), '--run_name', 'r',
            '--hidden_size', '32', '--num_heads', '2', '--intermediate_size', '64', '--embedding_size', '32', '--num_layers', '1',
            '--batch_size', '4', '--steps', '6', '--warmup_steps', '1', '--log_every', '1', *extra]
    if not prelude: cmd = [str(SCRIPT), *args]
    else:   # the script's own entry point, with a fault injected first
        cmd = [sys.executable, '-c', prelude + f'\nfrom electra_gdes.pretrain import main\nmain({args!r})']
    return subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=600)

def test_the_script_refuses_an_output_dir_that_is_a_file(tmp_path):
    f = tmp_path/'out'; f.write_text('not a folder')
    p = _cli(tmp_path, '--output_dir', str(f))
    assert p.returncode not in (0, None) and 'Traceback' not in p.stderr, p.stderr[-2000:]
    assert 'is a file, not a folder' in p.stderr and str(f) in p.stderr
    assert f.read_text() == 'not a folder'

def test_the_script_ends_a_full_disk_with_one_message(tmp_path):
    prelude = textwrap.dedent('''
        import errno, os
        real, n = os.fsync, [0]
        def fsync(fd):
            n[0] += 1
            if n[0] > 2: raise OSError(errno.ENOSPC, 'No space left on device')
            return real(fd)
        os.fsync = fsync''')
    p = _cli(tmp_path, '--output_dir', str(tmp_path/'out'), '--checkpoint_fractions', '0.5', '1', prelude=prelude)
    run = tmp_path/'out'/'r'
    assert p.returncode == 1 and 'Traceback' not in p.stderr, p.stderr[-3000:]
    errors = [l for l in p.stderr.splitlines() if 'No space left on device' in l]
    assert len(errors) == 1 and str(checkpoint_path(run, 6)) in errors[0] and 'free space' in errors[0], p.stderr[-2000:]
    assert _no_tmp_left(run) == [] and checkpoint_problem(checkpoint_path(run, 3)) is None
    assert [r['step'] for r in read_log(run/'log.csv')] == list(range(1, 7))
