"""Issue 16 parts 1 and 3 on the fine-tuning side: a sweep holds its group (a second `electra-finetune` into it exits 2
with one line naming the holder, having written nothing), and a results file with a cut-off last line is read again
(that run is redone) instead of stopping the sweep."""
import json, os, warnings
import pytest
from helpers import practice_suite_and_checkpoint
from cli_helpers import checksums, script
from electra_gdes.run_lock import RunLock

@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp('lock')
    warnings.filterwarnings('ignore', message='.*SYNTHETIC.*')
    practice, _ = practice_suite_and_checkpoint(d, n_train=60, n_dev=40, n_test=12)
    common = ['--checkpoint', str(d/'disc'), '--glue_dir', str(practice), '--epochs', '1', '--batch_size', '16', '--tasks', 'sst2']
    return d, common

def test_a_second_sweep_into_a_held_group_exits_2_and_writes_nothing(setup):
    d, common = setup
    group = d/'checkpoints'/'glue'/'held'
    group.mkdir(parents=True)
    (group/'results.jsonl').write_text('')
    before = checksums(group)
    with RunLock(group, what='fine-tuning group'):     # this test process is the other sweep
        p = script('electra-finetune', *common, '--runs', '1', '--group', 'held', cwd=d)
    assert p.returncode == 2, p.stderr[-2000:]
    err = [l for l in p.stderr.splitlines() if 'error' in l]
    assert len(err) == 1 and f'pid {os.getpid()}' in err[0] and '--group' in err[0], p.stderr[-2000:]
    assert checksums(group) == before

def test_a_cut_off_last_result_line_is_redone(setup):
    d, common = setup
    first = script('electra-finetune', *common, '--runs', '2', '--group', 'cut', cwd=d)
    assert first.returncode == 0, first.stderr[-3000:]
    results = d/'checkpoints'/'glue'/'cut'/'results.jsonl'
    lines = results.read_text().splitlines()
    assert len(lines) == 2
    results.write_text(lines[0] + '\n' + lines[1][:len(lines[1]) // 2])      # the second run's record cut off
    again = script('electra-finetune', *common, '--runs', '2', '--group', 'cut', cwd=d)
    assert again.returncode == 0, again.stderr[-3000:]
    assert 'cut off' in again.stderr and '1 runs already finished, 1 to go' in again.stdout
    records = [json.loads(l) for l in results.read_text().splitlines()[:1] + results.read_text().splitlines()[2:]]
    assert sorted(r['run'] for r in records) == [0, 1]
