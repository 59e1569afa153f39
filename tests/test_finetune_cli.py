"The installed `electra-finetune` end to end in a subprocess: every task once, summary, validated submission, resume with a tracker, predict-only re-export, a failed push, bad data, exit status."
import json, shutil, warnings

import pytest
from helpers import practice_suite_and_checkpoint
from cli_helpers import checksums, script
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

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
    group = d/'checkpoints'/'glue'/'cli'
    again = finetune(*common, '--runs', '2', '--tasks', 'rte', 'wnli', '--log', 'csv,tensorboard', cwd=d)
    assert again.returncode == 0, again.stderr[-3000:]
    assert '2 runs already finished, 2 to go' in again.stdout and 'No submission' in again.stdout
    results = [json.loads(l) for l in (group/'results.jsonl').read_text().splitlines()]
    assert len(results) == 11
    acc = EventAccumulator(str(group/'tensorboard')); acc.Reload()   # --log tensorboard: each new run's dev metrics at its index
    (rte1,) = [r for r in results if (r['task'], r['run']) == ('rte', 1)]
    assert [(e.step, round(e.value, 5)) for e in acc.Scalars('glue/rte/accuracy')] == [(1, round(rte1['metrics']['accuracy'], 5))]
    shutil.rmtree(group/'rte_best'); shutil.rmtree(d/'test_outputs'/'cli')
    ens = finetune(*common, '--predict_only', '--selection', 'topk-mean', '--top_k', '2', cwd=d)
    assert ens.returncode == 0, ens.stderr[-3000:]
    assert 'to go' not in ens.stdout  # nothing trained
    assert (group/'rte_1'/'test_outputs.npz').is_file()  # the second-best RTE run predicted too
    best_rte = max((r for r in results if r['task'] == 'rte'), key=lambda r: r['score'])
    assert 'Best runs exported' in ens.stdout and json.loads((group/'rte_best'/'export.json').read_text())['run'] == best_rte['run']
    validate_submission(d/'test_outputs'/'cli', str(practice))   # written again from the results file

def test_failed_push_is_one_message_and_keeps_the_export(setup):
    d, practice, common, _ = setup
    group = d/'checkpoints'/'glue'/'cli'
    before = checksums(group/'rte_best')
    r = finetune(*common, '--predict_only', '--tasks', 'rte', '--push_to_hub', '--hub_model_id', 'someone/tiny-glue', cwd=d)
    assert r.returncode == 1 and 'Traceback' not in r.stderr   # offline here (HF_HUB_OFFLINE=1): the push cannot succeed
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith('electra-finetune: error: Could not push') and "'someone/tiny-glue-rte'" in line and 'checkpoints/glue/cli/rte_best to the hub' in line
    assert checksums(group/'rte_best') == before

def test_broken_task_folder_fails_before_writing(setup, tmp_path):
    d, practice, common, _ = setup
    broken = shutil.copytree(practice, tmp_path/'glue')
    dev = broken/'RTE'/'dev.tsv'
    dev.write_text(dev.read_text().splitlines(keepends=True)[0])   # its header and no examples
    r = finetune('--checkpoint', str(d/'disc'), '--glue_dir', str(broken), '--group', 'broken', '--tasks', 'rte', 'sst2', cwd=d)
    assert r.returncode == 1 and 'Traceback' not in r.stderr
    error = r.stderr[r.stderr.index('electra-finetune: error:'):].strip().splitlines()
    assert 'cannot be used for --tasks rte sst2 (1 problem(s)' in error[0] and len(error) == 2   # one line per problem
    assert f"{dev}: no examples" in error[1]
    assert not (d/'checkpoints'/'glue'/'broken').exists()

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

def test_a_group_refuses_its_checkpoint_trained_on(tmp_path):
    "The checkpoint folder now holds another model (pretraining resumed, exported in place): the group's runs stay its own."
    d = tmp_path
    practice, disc = practice_suite_and_checkpoint(d, n_train=40, n_dev=20, n_test=8)
    common = ['--checkpoint', str(disc), '--glue_dir', str(practice), '--epochs', '1', '--batch_size', '16', '--group', 'trained_on', '--tasks', 'rte']
    first = finetune(*common, cwd=d)
    assert first.returncode == 0, first.stderr[-3000:]
    group = d/'checkpoints'/'glue'/'trained_on'
    assert json.loads((group/'checkpoint.json').read_text())['checkpoint'] == str(disc)
    from transformers import AutoModelForPreTraining
    import torch
    model = AutoModelForPreTraining.from_pretrained(disc)
    with torch.no_grad(): next(model.parameters()).add_(0.01)
    model.save_pretrained(disc)
    before = checksums(group)
    again = finetune(*common, '--runs', '2', cwd=d)
    assert again.returncode == 1 and 'Traceback' not in again.stderr, again.stderr[-3000:]
    line = again.stderr.strip().splitlines()[-1]
    assert line.startswith('electra-finetune: error: The runs in') and 'it now holds another model (model.safetensors differ)' in line, line
    assert 'Pass a new --group for this checkpoint' in line and checksums(group) == before
