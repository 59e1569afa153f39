"""Fine-tuning logs that suit a file: with stdout not a terminal, `electra-finetune` prints a line per epoch with the dev
metric and a line per run with the sweep's ETA (no progress-bar redraws, no `\\r` on stdout or stderr); the size this
makes for the default sweep (9 tasks x 10 runs)."""
import io, json, re, subprocess, sys, warnings
from types import SimpleNamespace

import pytest
from helpers import practice_suite_and_checkpoint
from cli_helpers import BIN, ENV

from electra_gdes.config import FinetuneConfig, GLUE_TASKS
from electra_gdes.glue_metrics import MAIN_METRIC

TASKS, RUNS, EPOCHS = ('sst2', 'mnli'), 2, 2
EPOCH = re.compile(r'^(\w+) run (\d+): epoch (\d+)/(\d+) train_loss ([\d.]+) valid_loss ([\d.]+) (\w+) (-?[\d.]+) time [\d:]+$')
RUN = re.compile(r'^\[(\d+)/(\d+)\] (\w+) run (\d+): (\w+) (-?[\d.]+) \(sweep ETA ([\d:]+)\)$')

def seconds(hms: str) -> int:
    s = 0
    for part in hms.split(':'): s = 60 * s + int(part)
    return s

@pytest.fixture(scope='module')
def file_run(tmp_path_factory):
    d = tmp_path_factory.mktemp('ftlog')
    warnings.filterwarnings('ignore', message='.*SYNTHETIC.*')
    practice, ckpt = practice_suite_and_checkpoint(d, n_train=48, n_dev=24, n_test=6)
    args = [BIN/'electra-finetune', '--checkpoint', ckpt, '--glue_dir', practice, '--tasks', *TASKS, '--runs', RUNS,
            '--epochs', EPOCHS, '--batch_size', 16, '--group', 'logs']
    with open(d/'stdout.txt', 'wb') as out, open(d/'stderr.txt', 'wb') as err:
        p = subprocess.run(list(map(str, args)), stdout=out, stderr=err, cwd=d, env=ENV, timeout=600)
    return d, p.returncode, (d/'stdout.txt').read_bytes(), (d/'stderr.txt').read_bytes()

def test_stdout_to_a_file_gets_a_line_per_epoch_and_per_run(file_run):
    d, rc, out, err = file_run
    assert rc == 0, (out + err).decode()[-3000:]
    assert b'\r' not in out and b'\r' not in err
    assert '█'.encode() not in out and '█'.encode() not in err   # no progress-bar remnants
    lines = out.decode().splitlines()
    epochs = [EPOCH.match(l).groups() for l in lines if EPOCH.match(l)]
    want = [(t, str(i), str(e), str(EPOCHS)) for t in TASKS for i in range(RUNS) for e in range(1, EPOCHS + 1)]
    assert [g[:4] for g in epochs] == want
    assert all(g[6] == MAIN_METRIC[g[0]] for g in epochs)   # each epoch line names the task's dev metric
    runs = [RUN.match(l).groups() for l in lines if RUN.match(l)]
    assert [(int(n), int(of), t, int(i)) for n, of, t, i, *_ in runs] == \
           [(n, len(want) // EPOCHS, t, i) for n, (t, i) in enumerate(((t, i) for t in TASKS for i in range(RUNS)), 1)]
    assert seconds(runs[-1][6]) == 0 and all(seconds(r[6]) >= 0 for r in runs)
    # the last epoch's printed dev metric is the run's recorded score, to the printed precision
    results = {(r['task'], r['run']): r for r in map(json.loads, (d/'checkpoints'/'glue'/'logs'/'results.jsonl').read_text().splitlines())}
    for t, i, e, _, _, _, name, value in epochs:
        if int(e) == EPOCHS: assert float(value) == pytest.approx(results[t, int(i)]['metrics'][name], abs=1e-4)
    for n, of, t, i, name, value, eta in runs: assert float(value) == pytest.approx(results[t, int(i)]['score'], abs=1e-4)
    # stderr: the synthetic-data warning at most, the same for any number of runs
    assert 'Traceback' not in err.decode() and len(err.decode().splitlines()) <= 4, err.decode()

def test_the_default_sweep_writes_well_under_a_megabyte(file_run):
    "Bytes per epoch line and per run line measured here, scaled to 9 tasks x 10 runs at the published epochs."
    d, rc, out, err = file_run
    assert rc == 0, (out + err).decode()[-3000:]
    lines = out.decode().splitlines()
    per_epoch = max(len(l) + 1 for l in lines if EPOCH.match(l)) + 4   # wider losses and times
    per_run = max(len(l) + 1 for l in lines if RUN.match(l)) + 4       # [90/90], longer ETAs
    other = [l for l in lines if not EPOCH.match(l) and not RUN.match(l)]
    assert len(other) <= 120, len(other)   # the config, the summary table: they do not grow with the runs
    cfg = FinetuneConfig(checkpoint='electra-small')
    total = sum(cfg.runs * (cfg.task_epochs(t) * per_epoch + per_run) for t in GLUE_TASKS) + sum(len(l) + 1 for l in other)
    print(f'{per_epoch} bytes per epoch line, {per_run} per run line; the default sweep: {total / 1e3:.0f} KB')
    assert total <= 200e3, f'{total / 1e3:.0f} KB'

@pytest.mark.parametrize('tty', [True, False])
def test_the_bar_stays_in_a_terminal_and_goes_in_a_file(tmp_path, monkeypatch, tty):
    from fastai.callback.progress import ProgressCallback
    from electra_gdes.glue_model import glue_classifier
    from electra_gdes.glue_finetune import finetune_learner
    class Out(io.StringIO):
        def isatty(self): return tty
    _, ckpt = practice_suite_and_checkpoint(tmp_path, n_train=4, n_dev=4, n_test=2)
    model, _ = glue_classifier(ckpt, 2)
    monkeypatch.setattr(sys, 'stdout', Out())
    learn = finetune_learner(FinetuneConfig(checkpoint=str(ckpt)), SimpleNamespace(name='cola', is_regression=False), model, [], None,
                             name='cola run 3: ')
    assert any(isinstance(cb, ProgressCallback) for cb in learn.cbs) == tty
    assert (learn.logger is print) == tty
    if not tty:
        learn.n_epoch = 3
        learn.recorder.metric_names = ['epoch', 'train_loss', 'valid_loss', 'mcc', 'time']
        learn.logger([0, 0.5, 0.25, 0.125, '00:01'])
        assert sys.stdout.getvalue() == 'cola run 3: epoch 1/3 train_loss 0.5000 valid_loss 0.2500 mcc 0.1250 time 00:01\n'
