"The installed `electra-finetune` end to end in a subprocess: every task once, summary, validated submission, resume, predict-only, exit status."
import warnings

import pytest
from helpers import practice_suite_and_checkpoint
from cli_helpers import script

from electra_gdes.glue_submission import SUBMISSION_FILES, validate_submission


def finetune(*args, cwd): return script('electra-finetune', *args, cwd=cwd)

@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp('cli')
    warnings.filterwarnings('ignore', message='.*SYNTHETIC.*')
    practice, _ = practice_suite_and_checkpoint(d, n_train=60, n_dev=40, n_test=12)
    common = ['--checkpoint', str(d/'disc'), '--glue_dir', str(practice), '--epochs', '1', '--batch_size', '16', '--group', 'cli']
    first = finetune(*common, '--runs', '1', cwd=d)
    return d, practice, common, first

def test_sweep_summary_and_submission(setup):
    d, practice, common, first = setup
    assert first.returncode == 0, first.stderr[-3000:]   # the installed script exits 0 after a successful sweep
    assert first.stdout.count('cli: dev scores x100') == 1   # the summary table is printed once
    group = d/'checkpoints'/'glue'/'cli'
    assert len((group/'results.jsonl').read_text().splitlines()) == 9
    assert {'summary.csv', 'summary.md', 'summary.png', 'config.json'} <= {p.name for p in group.iterdir()}
    assert 'ELECTRA-Small-OWT' not in (group/'summary.md').read_text()  # practice suite: no published numbers beside it
    counts = validate_submission(d/'test_outputs'/'cli', str(practice))
    assert set(counts) == set(SUBMISSION_FILES) and counts['AX'] == 12
    assert (d/'test_outputs'/'cli'/'submission.zip').is_file()

def test_resume_then_predict_only(setup):
    d, practice, common, _ = setup
    again = finetune(*common, '--runs', '2', '--tasks', 'rte', 'wnli', cwd=d)
    assert again.returncode == 0, again.stderr[-3000:]
    assert '2 runs already finished, 2 to go' in again.stdout and 'No submission' in again.stdout
    assert len((d/'checkpoints'/'glue'/'cli'/'results.jsonl').read_text().splitlines()) == 11
    ens = finetune(*common, '--predict_only', '--selection', 'topk-mean', '--top_k', '2', cwd=d)
    assert ens.returncode == 0, ens.stderr[-3000:]
    assert 'to go' not in ens.stdout  # nothing trained
    assert (d/'checkpoints'/'glue'/'cli'/'rte_1'/'test_outputs.npz').is_file()  # the second-best RTE run predicted too
    validate_submission(d/'test_outputs'/'cli', str(practice))

def test_predict_only_without_runs_fails_cleanly(setup):
    d, practice, common, _ = setup
    r = finetune(*common, '--predict_only', '--group', 'nothing', cwd=d)
    assert r.returncode != 0 and "no finished run of 'cola'" in r.stderr
    assert not (d/'test_outputs'/'nothing').exists()

def test_missing_checkpoint_fails_before_writing(setup):
    d, practice, common, _ = setup
    r = finetune('--checkpoint', str(d/'no_such_dir'), '--glue_dir', str(practice), '--group', 'nockpt', '--tasks', 'rte', cwd=d)
    assert r.returncode != 0 and '--checkpoint' in r.stderr.splitlines()[-1]
    assert not (d/'checkpoints'/'glue'/'nockpt').exists()
