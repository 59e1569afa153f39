"""No pretraining run is destroyed by accident, through the installed `electra-pretrain`: a rerun is refused and leaves the
run byte for byte as it was, `--resume` refuses changed settings (the shape always, the schedule unless `--allow_change`
names it), a finished run is not retrained, `--overwrite` replaces it, a bad output folder is one clear line."""
import shutil
import pytest
from cli_helpers import script, tiny_pretrain_args, checksums
from electra_gdes.logs import read_log

@pytest.fixture(scope='module')
def finished(tmp_path_factory):
    "A finished 4-step run in `<d>/out/r`."
    d = tmp_path_factory.mktemp('safety')
    r = script('electra-pretrain', *tiny_pretrain_args(d), '--log', 'csv,tensorboard')
    assert r.returncode == 0, r.stderr[-3000:]
    assert any((d/'out'/'r'/'tensorboard').glob('events.out.tfevents.*'))
    return d

def _copy(finished, tmp_path):
    "The finished run copied under `tmp_path` (with the corpus and cache), so that a test may change it."
    shutil.copytree(finished, tmp_path, dirs_exist_ok=True)
    return tmp_path

def _last_line(r): return r.stderr.strip().splitlines()[-1]

def test_rerun_is_refused_and_changes_nothing(finished):
    before = checksums(finished/'out')
    r = script('electra-pretrain', *tiny_pretrain_args(finished))
    assert r.returncode == 1
    line = _last_line(r)
    assert line.startswith('electra-pretrain: error:') and 'already holds a run' in line
    assert all(w in line for w in ('--resume', '--run_name', '--overwrite')), line
    assert 'Traceback' not in r.stderr
    assert checksums(finished/'out') == before

def test_bad_option_on_an_existing_run_is_a_usage_error_and_changes_nothing(finished):
    before = checksums(finished/'out')
    r = script('electra-pretrain', *tiny_pretrain_args(finished), '--resume', '--mask_prob', '1.5')
    assert r.returncode == 2 and 'mask_prob=1.5 is out of range' in _last_line(r) and 'Traceback' not in r.stderr
    assert checksums(finished/'out') == before

def test_resume_with_another_shape_is_refused_in_one_line(finished):
    before = checksums(finished/'out')
    r = script('electra-pretrain', *tiny_pretrain_args(finished), '--resume', '--hidden_size', '64')
    assert r.returncode == 1 and 'Traceback' not in r.stderr
    assert 'hidden_size 32 -> 64 (cannot change' in _last_line(r)
    assert checksums(finished/'out') == before

def test_finished_run_is_not_retrained(finished):
    before = checksums(finished/'out')
    same = script('electra-pretrain', *tiny_pretrain_args(finished), '--resume')
    assert same.returncode == 0 and 'nothing to do, nothing changed' in same.stdout
    fewer = script('electra-pretrain', *tiny_pretrain_args(finished, steps=2), '--resume', '--allow_change', 'steps')
    assert fewer.returncode == 1 and 'already trained 4 steps, more than --steps 2' in _last_line(fewer)
    assert checksums(finished/'out') == before

def test_more_steps_need_allow_change(finished, tmp_path):
    d = _copy(finished, tmp_path)
    before = checksums(d/'out')
    refused = script('electra-pretrain', *tiny_pretrain_args(d, steps=6, corpus=finished/'corpus'), '--resume')
    assert refused.returncode == 1 and 'steps 4 -> 6 (add --allow_change steps' in _last_line(refused)
    assert checksums(d/'out') == before
    longer = script('electra-pretrain', *tiny_pretrain_args(d, steps=6, corpus=finished/'corpus'), '--resume', '--allow_change', 'steps')
    assert longer.returncode == 0, longer.stderr[-3000:]
    assert 'at step 4 of 6' in longer.stdout
    assert [r['step'] for r in read_log(d/'out'/'r'/'log.csv')] == list(range(1, 7))
    assert '"steps": 6' in (d/'out'/'r'/'run_config.json').read_text()

def test_overwrite_replaces_the_run(finished, tmp_path):
    d = _copy(finished, tmp_path)
    before = checksums(d/'out'/'r')
    r = script('electra-pretrain', *tiny_pretrain_args(d, steps=2, corpus=finished/'corpus'), '--overwrite', '--log', 'csv')
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'Replacing the run' in r.stdout
    assert not (d/'out'/'r'/'tensorboard').exists()   # the old run's tracker files went with it
    assert [x['step'] for x in read_log(d/'out'/'r'/'log.csv')] == [1, 2]
    assert sorted(p.name for p in (d/'out'/'r'/'checkpoints').glob('*.pt')) == ['step-00000001.pt', 'step-00000002.pt']
    assert checksums(d/'out'/'r') != before

def test_output_dir_that_is_a_file_is_one_clear_line(tmp_path):
    (tmp_path/'out').write_text('not a folder')
    r = script('electra-pretrain', *tiny_pretrain_args(tmp_path))
    assert r.returncode == 1 and 'Traceback' not in r.stderr
    assert 'is a file, not a folder' in _last_line(r)
    assert (tmp_path/'out').read_text() == 'not a folder' and not (tmp_path/'cache').exists()

def test_a_run_that_failed_before_its_first_checkpoint_does_not_block_its_rerun(tmp_path):
    "A real failure after the run's config and log were written (non-finite steps at lr 1e30), then the rerun: it starts in its place."
    args = [*tiny_pretrain_args(tmp_path), '--checkpoint_fractions', '1']
    failed = script('electra-pretrain', *args, '--lr', '1e30', '--max_nonfinite', '1', '--clip_norm', '0')
    run = tmp_path/'out'/'r'
    assert failed.returncode == 1 and 'Traceback' not in failed.stderr, failed.stderr[-3000:]
    assert 'non-finite steps in a row' in _last_line(failed)
    assert (run/'run_config.json').is_file() and (run/'log.csv').is_file() and not (run/'checkpoints').exists()
    rerun = script('electra-pretrain', *args)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f'{run} holds a run that stopped before its first checkpoint (run_config.json, log.csv): nothing to resume' in rerun.stdout
    assert [r['step'] for r in read_log(run/'log.csv')] == [1, 2, 3, 4]   # the failed run's rows are gone
    assert '"lr": 0.001' in (run/'run_config.json').read_text() and (run/'discriminator').is_dir()
