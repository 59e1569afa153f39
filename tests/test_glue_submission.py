"GLUE submission: the 11 files in test-file order, atomic writes, and a validator that rejects broken submissions."
import os, random, shutil, subprocess, sys, zipfile
from pathlib import Path

import pytest
from datasets import Dataset

from electra_gdes.glue_data import GLUE_SPECS, GLUE_TEST_ROWS, SUBMISSION_FILES, GlueTask, glue_spec, make_practice_glue
from electra_gdes.glue_submission import (SUBMISSION_ZIP, SubmissionError, expected_test_indices, glue_submission,
                                          main, submission_label, validate_submission)

FIX = Path(__file__).parent/'fixtures'/'glue'
STEMS = ['CoLA', 'SST-2', 'MRPC', 'STS-B', 'QQP', 'MNLI-m', 'MNLI-mm', 'QNLI', 'RTE', 'WNLI', 'AX']


def random_predictions(expected, seed=0):
    "Predictions for every test index, in a shuffled order (class ids; STS-B scores, some outside [0, 5])."
    rng, out = random.Random(seed), {}
    for stem, idx in expected.items():
        spec = glue_spec(SUBMISSION_FILES[stem][0])
        idx = rng.sample(idx, len(idx))
        out[stem] = (idx, [rng.uniform(-1, 6) if spec.is_regression else rng.randrange(spec.num_labels) for _ in idx])
    return out


@pytest.fixture
def good(tmp_path):
    preds = random_predictions(expected_test_indices(FIX)[0])
    return glue_submission(preds, tmp_path/'test_outputs'/'grp', FIX), preds


def rows(folder, stem): return [l.split('\t') for l in (folder/f'{stem}.tsv').read_text().splitlines()]


def test_the_eleven_files_in_test_file_order(good):
    out, preds = good
    assert sorted(p.name for p in out.iterdir()) == sorted([f'{s}.tsv' for s in STEMS] + [SUBMISSION_ZIP])
    assert sorted(SUBMISSION_FILES) == sorted(STEMS)
    for stem in STEMS:
        task, split = SUBMISSION_FILES[stem]
        spec = GLUE_SPECS[task]
        r = rows(out, stem)
        assert r[0] == ['index', 'prediction']
        # the test file's own index column, in its order
        test_file = [l.split('\t') for l in (FIX/spec.files[split][0]).read_text().splitlines()[1:]]
        assert [x[0] for x in r[1:]] == [t[0] for t in test_file]
        by_idx = dict(zip(*preds[stem]))
        for i, p in r[1:]:
            v = by_idx[int(i)]
            if spec.is_regression: assert float(p) == pytest.approx(min(max(v, 0), 5), abs=5e-4)   # clipped to [0, 5]
            else: assert p == spec.tsv_labels[v]
    assert {p for _, p in rows(out, 'MNLI-m')[1:]} <= {'entailment', 'neutral', 'contradiction'}
    assert {p for _, p in rows(out, 'RTE')[1:]} <= {'entailment', 'not_entailment'}
    assert {p for _, p in rows(out, 'CoLA')[1:]} <= {'0', '1'}
    with zipfile.ZipFile(out/SUBMISSION_ZIP) as zf:
        assert sorted(zf.namelist()) == sorted(f'{s}.tsv' for s in STEMS)
        assert zf.read('AX.tsv') == (out/'AX.tsv').read_bytes()
    assert validate_submission(out, FIX) == {'CoLA': 3, 'SST-2': 2, 'MRPC': 2, 'STS-B': 2, 'QQP': 3, 'MNLI-m': 3,
                                             'MNLI-mm': 2, 'QNLI': 2, 'RTE': 2, 'WNLI': 2, 'AX': 3}


def test_label_strings():
    assert [submission_label('AX', i) for i in range(3)] == ['entailment', 'neutral', 'contradiction']
    assert [submission_label('QNLI', i) for i in range(2)] == ['entailment', 'not_entailment']
    assert [submission_label(s, 1) for s in ('CoLA', 'SST-2', 'MRPC', 'QQP', 'WNLI')] == ['1'] * 5
    assert submission_label('STS-B', 2.71828) == '2.718'


def break_copy(good_dir, tmp_path, edit):
    b = tmp_path/'broken'; shutil.rmtree(b, ignore_errors=True); shutil.copytree(good_dir, b)
    (b/SUBMISSION_ZIP).unlink()
    edit(b); return b


def put(b, stem, r): (b/f'{stem}.tsv').write_text('\n'.join('\t'.join(x) for x in r) + '\n')


@pytest.mark.parametrize('edit,message', [
    (lambda b: (b/'QQP.tsv').unlink(), r'QQP\.tsv: missing'),
    (lambda b: put(b, 'SST-2', [['idx', 'prediction']] + rows(b, 'SST-2')[1:]), r"SST-2\.tsv:1: header 'idx\\tprediction'"),
    (lambda b: put(b, 'MNLI-m', rows(b, 'MNLI-m') + [['3', 'neutral']]), r'MNLI-m\.tsv: 4 rows, the test file has 3'),
    (lambda b: put(b, 'AX', rows(b, 'AX')[:-1]), r'AX\.tsv: 2 rows, the test file has 3'),
    (lambda b: put(b, 'QQP', [rows(b, 'QQP')[i] for i in (0, 1, 3, 2)]), r"QQP\.tsv:3: index '2', expected 1"),
    (lambda b: put(b, 'WNLI', [rows(b, 'WNLI')[0], ['0', 'entailment'], rows(b, 'WNLI')[2]]), r"WNLI\.tsv:2: prediction 'entailment' is not one of 0, 1"),
    (lambda b: put(b, 'RTE', [rows(b, 'RTE')[0], ['0', '1'], rows(b, 'RTE')[2]]), r"RTE\.tsv:2: prediction '1' is not one of entailment, not_entailment"),
    (lambda b: put(b, 'STS-B', rows(b, 'STS-B')[:2] + [['1', '-0.5']]), r"STS-B\.tsv:3: STS-B prediction '-0.5' is not a number in \[0, 5\]"),
    (lambda b: put(b, 'STS-B', rows(b, 'STS-B')[:2] + [['1', 'high']]), r"STS-B\.tsv:3: STS-B prediction 'high'"),
    (lambda b: put(b, 'CoLA', rows(b, 'CoLA')[:3] + [['2', '1', 'extra']]), r'CoLA\.tsv:4: 3 fields'),
])
def test_validator_rejects_broken_submissions(good, tmp_path, edit, message):
    with pytest.raises(SubmissionError, match=message): validate_submission(break_copy(good[0], tmp_path, edit), FIX)


def test_validator_lists_every_problem_and_checks_the_zip(good, tmp_path):
    b = break_copy(good[0], tmp_path, lambda b: [(b/'QQP.tsv').unlink(), (b/'AX.tsv').unlink()])
    with pytest.raises(SubmissionError, match=r'(?s)2 problem\(s\).*QQP\.tsv: missing.*AX\.tsv: missing'): validate_submission(b, FIX)
    z = break_copy(good[0], tmp_path, lambda b: shutil.copy(good[0]/SUBMISSION_ZIP, b/SUBMISSION_ZIP))
    put(z, 'CoLA', [rows(z, 'CoLA')[0]] + [[i, '1' if p == '0' else '0'] for i, p in rows(z, 'CoLA')[1:]])
    with pytest.raises(SubmissionError, match=r'submission\.zip: CoLA\.tsv differs'): validate_submission(z, FIX)


def test_writer_is_atomic(good, tmp_path):
    out, preds = good
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    parent = sorted(os.listdir(out.parent))
    bad = [{**preds, 'AX': (preds['AX'][0], ['entails'] * len(preds['AX'][0]))},       # bad label in the last file
           {**preds, 'QNLI': (preds['QNLI'][0][:-1], preds['QNLI'][1][:-1])},           # a test row not predicted
           {k: v for k, v in preds.items() if k != 'MRPC'},                              # a file missing
           {**preds, 'RTE': (preds['RTE'][0], preds['RTE'][1][:-1])}]                    # lengths differ
    for p, msg in zip(bad, ['AX: prediction', 'QNLI: the predictions do not cover', 'No predictions for MRPC', 'RTE: 2 indices but 1']):
        with pytest.raises(ValueError, match=msg): glue_submission(p, out, FIX)
        assert {q.name: q.read_bytes() for q in out.iterdir()} == before            # earlier submission untouched
        assert sorted(os.listdir(out.parent)) == parent                             # no temporary folder left
    with pytest.raises(ValueError, match='Unknown submission'): glue_submission({**preds, 'MNLI': preds['AX']}, out, FIX)
    fresh = tmp_path/'fresh'/'grp'
    with pytest.raises(ValueError): glue_submission(bad[0], fresh, FIX)
    assert not fresh.parent.exists()                                               # bad input: nothing written at all


def stand_in_tasks(rows_per_stem):
    return [GlueTask(name, None, {}, {split: Dataset.from_dict({'idx': list(range(rows_per_stem[stem]))})
                                      for split, stem in spec.submission.items()},
                     spec.label_names, spec.num_labels, spec.is_regression) for name, spec in GLUE_SPECS.items()]


def test_real_glue_needs_the_official_row_counts(tmp_path):
    full = stand_in_tasks(GLUE_TEST_ROWS)
    preds = {s: (list(range(n)), [1.0 if s == 'STS-B' else 0] * n) for s, n in GLUE_TEST_ROWS.items()}
    out = glue_submission(preds, tmp_path/'real', full)
    assert validate_submission(out, full) == GLUE_TEST_ROWS
    short = stand_in_tasks({**GLUE_TEST_ROWS, 'MNLI-mm': 9800})                       # a truncated download
    with pytest.raises(SubmissionError, match='MNLI-mm test set has 9800 rows, the official GLUE one 9847'):
        validate_submission(out, short)
    # a synthetic test set is never held to GLUE's counts: only the submission's own row count is wrong here
    for t in short: t.synthetic = True
    with pytest.raises(SubmissionError, match=r'1 problem\(s\)\):\n  MNLI-mm\.tsv: 9847 rows, the test file has 9800'):
        validate_submission(out, short)


def test_check_command(good, capsys):
    out = good[0]
    assert main(['--check', str(out), '--glue_dir', str(FIX)]) == 0
    assert 'valid GLUE submission (26 rows in 11 files)' in capsys.readouterr().out
    (out/'RTE.tsv').write_text('index\tprediction\n0\tentailment\n')
    cmd = [sys.executable, '-m', 'electra_gdes.glue_submission', '--check', str(out), '--glue_dir', str(FIX)]
    bad = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, 'HF_DATASETS_OFFLINE': '1', 'HF_HUB_OFFLINE': '1'})
    assert bad.returncode == 1 and 'RTE.tsv: 1 rows, the test file has 2' in bad.stderr


def test_check_against_the_practice_suite(tmp_path, capsys):
    texts = (FIX/'corpus.txt').read_text().split('\n\n')
    p = make_practice_glue(tmp_path/'data_cache'/'glue_practice_SYNTHETIC', texts, n_train=5, n_dev=5, n_test=7)
    exp, synthetic = expected_test_indices(p)
    assert synthetic and all(v == list(range(7)) for v in exp.values())
    out = glue_submission(random_predictions(exp), tmp_path/'test_outputs'/'practice', p)
    assert main(['--check', str(out), '--practice', '--cache_dir', str(tmp_path/'data_cache')]) == 0
    assert main(['--check', str(out), '--glue_dir', str(FIX)]) == 1                  # not the fixture's test rows
    assert 'CoLA.tsv: 7 rows, the test file has 3' in capsys.readouterr().err


# ---- disk and permission faults --------------------------------------------------------------------------------------

import errno


def _fail_on(monkeypatch, name, err=errno.ENOSPC, msg='No space left on device'):
    "Path.write_text (and write_bytes) fail with `err` for files called `name`, as a full disk would."
    real_text, real_bytes = Path.write_text, Path.write_bytes
    def text(self, *a, **k):
        if self.name.endswith(name): real_text(self, 'partial'); raise OSError(err, msg)   # half written, as a full disk leaves it
        return real_text(self, *a, **k)
    def data(self, *a, **k):
        if self.name.endswith(name): raise OSError(err, msg)
        return real_bytes(self, *a, **k)
    monkeypatch.setattr(Path, 'write_text', text); monkeypatch.setattr(Path, 'write_bytes', data)


def test_full_disk_during_submission_keeps_the_earlier_one(good, monkeypatch, capsys):
    out, preds = good
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    _fail_on(monkeypatch, 'MNLI-mm.tsv')
    with pytest.raises(OSError, match=f'Could not write {out}: No space left on device; the disk is full') as e:
        glue_submission(random_predictions(expected_test_indices(FIX)[0], seed=3), out, FIX)
    assert e.value.errno == errno.ENOSPC
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert os.listdir(out.parent) == ['grp']                 # no temporary folder left


def test_unwritable_submission_dir_is_named(tmp_path):
    blocker = tmp_path/'test_outputs'; blocker.write_text('a file where the folder should be')
    preds = random_predictions(expected_test_indices(FIX)[0])
    with pytest.raises(OSError, match=f'Could not write {blocker}/grp: .*a file is in the way'): glue_submission(preds, blocker/'grp', FIX)
    assert sorted(os.listdir(tmp_path)) == ['test_outputs']


@pytest.mark.parametrize('name', ['summary.csv', 'summary.md', 'summary.png'])
def test_full_disk_during_summary(tmp_path, monkeypatch, name):
    import pandas as pd
    from electra_gdes.glue_metrics import save_summary, summary_table
    df = summary_table([dict(task='rte', run=i, score=s, synthetic=True) for i, s in enumerate([0.6, 0.7])])
    save_summary(df, tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    if name == 'summary.png':
        import matplotlib.figure
        def full(*a, **k): raise OSError(errno.ENOSPC, 'No space left on device')
        monkeypatch.setattr(matplotlib.figure.Figure, 'savefig', full)
    elif name == 'summary.csv':
        def full(*a, **k): raise OSError(errno.ENOSPC, 'No space left on device')
        monkeypatch.setattr(pd.DataFrame, 'to_csv', full)
    else: _fail_on(monkeypatch, name)
    with pytest.raises(OSError, match=f'Could not write {tmp_path/name}: No space left on device'):
        save_summary(summary_table([dict(task='rte', run=0, score=0.9, synthetic=True)]), tmp_path)
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert set(after) == set(before)                        # no .tmp- file left
    assert after[name] == before[name]


def test_full_disk_during_results_line_and_run_save(tmp_path, monkeypatch):
    import torch, helpers
    from electra_gdes.glue_model import GlueClassifier, load_backbone, save_run
    from electra_gdes.glue_finetune import append_result, read_results
    path = tmp_path/'results.jsonl'
    append_result(path, dict(task='rte', run=0, score=0.5))
    ckpt = helpers.tiny_electra_checkpoint(tmp_path/'ckpt', helpers.tiny_tokenizer(['a', 'b']))
    backbone, tok = load_backbone(ckpt)
    save_run(GlueClassifier(backbone, 2), tok, tmp_path/'rte_0', dict(task='rte', run=0, num_labels=2))
    run_before = {p.name: p.read_bytes() for p in (tmp_path/'rte_0').iterdir()}
    _fail_on(monkeypatch, '.jsonl')
    with pytest.raises(OSError, match=f'Could not write {path}: No space left on device'): append_result(path, dict(task='rte', run=1, score=0.6))
    monkeypatch.undo()
    _fail_on(monkeypatch, 'run.json', errno.EACCES, 'Permission denied')
    with pytest.raises(PermissionError, match=f"Could not write {tmp_path/'rte_0'}: Permission denied; no permission"):
        save_run(GlueClassifier(backbone, 2), tok, tmp_path/'rte_0', dict(task='rte', run=0, num_labels=2))
    monkeypatch.undo()
    assert [r['run'] for r in read_results(path)] == [0]
    assert {p.name: p.read_bytes() for p in (tmp_path/'rte_0').iterdir()} == run_before
    assert sorted(os.listdir(tmp_path)) == ['ckpt', 'results.jsonl', 'rte_0']
