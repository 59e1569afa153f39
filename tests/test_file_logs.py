"""Logs that suit a file: with stdout not a terminal, `electra-pretrain` prints one parseable line every `log_every` steps
(no progress-bar redraws, no `\\r` on stdout or stderr); the size this makes for a 1M-step ELECTRA-small run."""
import os, subprocess
from pathlib import Path
import pytest
from electra_gdes.config import pretrain_config
from electra_gdes.logs import parse_log_line, read_log

from cli_helpers import BIN

SCRIPT = BIN/'electra-pretrain'
TEXT = ("The union is strong. We met in a time of trial and came through it together. "
        "Our work is not done, and the people expect the congress to act. ") * 3
STEPS, EVERY = 40, 10

def run_to_files(tmp_path, *extra, steps=STEPS, every=EVERY):
    corpus = tmp_path/'corpus.txt'
    corpus.write_text('\n\n'.join(f'Address number {i}.\n' + TEXT.replace('. ', '.\n') for i in range(12)))
    args = [str(SCRIPT), '--size', 'tiny', '--corpus', str(corpus), '--cache_dir', str(tmp_path/'cache'),
            '--output_dir', str(tmp_path/'out'), '--run_name', 'filelog', '--hidden_size', '32', '--num_heads', '2',
            '--intermediate_size', '64', '--embedding_size', '32', '--num_layers', '1', '--batch_size', '4',
            '--steps', str(steps), '--warmup_steps', '4', '--log_every', str(every), '--checkpoint_fractions', '1', *extra]
    env = {**os.environ, 'HF_HUB_OFFLINE': '1', 'HF_DATASETS_OFFLINE': '1', 'TRANSFORMERS_OFFLINE': '1', 'OMP_NUM_THREADS': '1',
           'MPLBACKEND': 'Agg', 'TOKENIZERS_PARALLELISM': 'false'}
    with open(tmp_path/'stdout.txt', 'wb') as out, open(tmp_path/'stderr.txt', 'wb') as err:
        p = subprocess.run(args, stdout=out, stderr=err, env=env, timeout=600)
    return p.returncode, (tmp_path/'stdout.txt').read_bytes(), (tmp_path/'stderr.txt').read_bytes()

def log_lines(stdout: bytes) -> list:
    return [parse_log_line(l) for l in stdout.decode().splitlines() if l.startswith('step ')]

@pytest.fixture(scope='module')
def file_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp('filelog')
    return tmp_path, *run_to_files(tmp_path)

def test_stdout_to_a_file_gets_one_line_per_logged_step(file_run):
    tmp_path, rc, out, err = file_run
    assert rc == 0, (out + err).decode()[-3000:]
    assert b'\r' not in out and b'\r' not in err
    assert '█'.encode() not in out and '█'.encode() not in err   # no progress-bar remnants
    rows = log_lines(out)
    assert [r['step'] for r in rows] == list(range(EVERY, STEPS + 1, EVERY))
    assert all(r['total'] == STEPS and r['eta'] is not None for r in rows)
    assert rows[-1]['eta'] == 0
    csv_rows = {r['step']: r for r in read_log(tmp_path/'out'/'filelog'/'log.csv')}
    for r in rows:   # the printed line is the CSV row, to its printed precision
        for k in ('loss', 'mlm_loss', 'disc_loss', 'gen_acc', 'disc_acc', 'replaced_f1'):
            assert r[k] == pytest.approx(csv_rows[r['step']][k], abs=1e-4, rel=1e-4), k
    # everything else the script prints (the config, the data summary, the exports) does not grow with the steps
    other = [l for l in out.decode().splitlines() if not l.startswith('step ')]
    assert len(other) <= 150, len(other)
    assert not any(l.startswith('[0, ') for l in other), 'fastai printed its own epoch summary'

def test_a_million_step_electra_small_run_writes_a_few_mb_to_stdout(file_run):
    "Measured on the tiny run (bytes per logged line, widened to 7-digit steps), then scaled to the ELECTRA-small preset."
    tmp_path, rc, out, err = file_run
    assert rc == 0, (out + err).decode()[-3000:]
    lines = [l for l in out.decode().splitlines() if l.startswith('step ')]
    per_line = max(len(l) + 1 for l in lines) + 2 * (len('1000000') - len(str(STEPS)))
    per_1000_steps = per_line * 1000 // EVERY
    small = pretrain_config('electra', 'small')
    total = per_line * small.steps // small.log_every + len(out) - sum(len(l) + 1 for l in lines)
    print(f'{per_1000_steps} bytes per 1,000 steps at log_every {EVERY}; ELECTRA-small ({small.steps} steps, log_every '
          f'{small.log_every}): {total / 1e6:.2f} MB')
    assert total <= 5e6, f'{total / 1e6:.1f} MB: raise the ELECTRA-small preset log_every'

@pytest.mark.parametrize('tty', [True, False])
def test_the_bar_stays_in_a_terminal_and_goes_in_a_file(tmp_path, monkeypatch, tty):
    import io, sys
    from fastai.callback.progress import ProgressCallback
    from electra_gdes.train import pretrain_learner
    from test_grad_accum import word_data, cfg_for
    class Out(io.StringIO):
        def isatty(self): return tty
    monkeypatch.setattr(sys, 'stdout', Out())
    tok, ds = word_data()
    learn = pretrain_learner(cfg_for(tmp_path, 'bar', 1), ds, tok)
    assert any(isinstance(cb, ProgressCallback) for cb in learn.cbs) == tty
    assert learn.rtd_logger.lines == (not tty)
