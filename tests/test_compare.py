"electra-compare through the installed console script: synthetic pretraining runs and GLUE results files."
import csv, json, subprocess, sys
from pathlib import Path

import pandas as pd
import pytest

from electra_gdes.compare import compare_runs
from electra_gdes.glue_finetune import append_result
from electra_gdes.logs import LOG_COLUMNS

COMPARE = Path(sys.executable).parent/'electra-compare'

def fake_run(path, name, values, eval_rows=None):
    "A run directory with a `log.csv` whose every metric at step s is `values[s]`, and an optional `eval.csv`."
    path.mkdir(parents=True)
    if name: (path/'run_config.json').write_text(json.dumps({'run_name': name, 'backbone': 'electra', 'embedding_sharing': name.split('-')[-1]}))
    with open(path/'log.csv', 'w', newline='') as f:
        w = csv.DictWriter(f, LOG_COLUMNS); w.writeheader()
        for step, v in values.items(): w.writerow({k: step if k == 'step' else v for k in LOG_COLUMNS})
    if eval_rows:
        (path/'eval.csv').write_text('step,disc_auc,tug_cos\n' + ''.join(f'{s},{a},{c}\n' for s, a, c in eval_rows))
    return path

def fake_group(path, scores):
    for task, ss in scores.items():
        for run, s in enumerate(ss): append_result(path/'results.jsonl', dict(task=task, run=run, seed=run, score=s, metrics={}, synthetic=True))
    return path

def compare(*args):
    return subprocess.run([str(COMPARE), *map(str, args)], capture_output=True, text=True, timeout=120)

@pytest.fixture
def runs(tmp_path):
    return [fake_run(tmp_path/'gdes', 'electra-tiny-gdes', {10: 2.0, 20: 1.5}, eval_rows=[(20, 0.55, -0.1)]),
            fake_run(tmp_path/'es', 'electra-tiny-es', {10: 3.0, 20: 2.5, 30: 2.0}),
            fake_run(tmp_path/'nes', '', {10: 4.0})]

def test_compare_runs_overlays_logged_values(runs):
    fig, table = compare_runs(runs)
    assert table is None
    by_title = {ax.get_title(): ax for ax in fig.axes if ax.get_visible()}
    assert list(by_title) == ['mlm_loss', 'disc_loss', 'gen_acc', 'disc_acc', 'replaced_f1', 'held-out disc_auc', 'held-out tug_cos']
    lines = by_title['disc_acc'].lines
    assert [l.get_label() for l in lines] == ['electra-tiny-gdes', 'electra-tiny-es', 'nes']   # run_config.json, run_config.json, dir name
    assert [list(l.get_xdata()) for l in lines] == [[10, 20], [10, 20, 30], [10]]
    assert list(lines[1].get_ydata()) == [3.0, 2.5, 2.0]
    (held_out,) = by_title['held-out disc_auc'].lines
    assert held_out.get_label() == 'electra-tiny-gdes' and list(held_out.get_ydata()) == [0.55]

def test_cli_writes_curves_and_joined_glue_table(tmp_path, runs):
    g1 = fake_group(tmp_path/'glue'/'gdes', dict(rte=[0.60, 0.70], sst2=[0.80]))
    g2 = fake_group(tmp_path/'glue'/'es', dict(rte=[0.50, 0.56, 0.62], sst2=[0.90], mrpc=[0.7]))
    (tmp_path/'glue'/'nes').mkdir()
    # the summary file electra-finetune writes, without the results file beside it (its 'GLUE avg' row is recomputed)
    pd.DataFrame({'metric': ['accuracy', 'accuracy', '2 tasks'], 'runs': [2, 1, 3], 'mean': [75.0, 85.0, 80.0], 'median': [75.0, 85.0, 80.0],
                  'std': [7.07, 0.0, None], 'best': [80.0, 85.0, 82.5]}, index=['rte', 'sst2', 'GLUE avg']).to_csv(tmp_path/'glue'/'nes'/'summary.csv')
    out = tmp_path/'out'
    p = compare(*runs, '--glue', g1, g2, tmp_path/'glue'/'nes', '--out', out)
    assert p.returncode == 0, p.stderr
    assert sorted(f.name for f in out.iterdir()) == ['curves.png', 'glue.csv', 'glue.md', 'glue.png']
    for png in ('curves.png', 'glue.png'): assert (out/png).read_bytes()[:4] == b'\x89PNG'
    df = pd.read_csv(out/'glue.csv', index_col=0)
    assert list(df.index) == ['sst2', 'mrpc', 'rte', 'GLUE avg']
    assert df.loc['rte', 'gdes mean'] == 65.0 and df.loc['rte', 'es mean'] == 56.0 and df.loc['rte', 'es runs'] == 3
    assert df.loc['rte', 'es std'] == 6.0 and df.loc['rte', 'nes mean'] == 75.0 and df.loc['rte', 'nes best'] == 80.0
    assert pd.isna(df.loc['mrpc', 'gdes mean']) and pd.isna(df.loc['mrpc', 'gdes runs']) and df.loc['mrpc', 'es mean'] == 70.0
    assert (out/'glue.csv').read_text().splitlines()[2].startswith('mrpc,accuracy,,,,,70.0,0.0,70.0,1,')   # counts as integers
    # averaged over the tasks every group has (sst2, rte), not mrpc
    assert df.loc['GLUE avg', 'gdes mean'] == 72.5 and df.loc['GLUE avg', 'es mean'] == 73.0 and df.loc['GLUE avg', 'nes mean'] == 80.0
    md = (out/'glue.md').read_text()
    assert 'SYNTHETIC' in md and '| rte | accuracy | 65.00 ± 7.07 (2) | 56.00 ± 6.00 (3) | 75.00 ± 7.07 (2) |' in md, md
    assert '| rte | accuracy | 65.00 ± 7.07 (2) | 56.00 ± 6.00 (3) |' in p.stdout

@pytest.mark.parametrize('case, expected', [
    ('missing_run', 'has no log.csv'), ('empty_log', 'has no logged step'), ('bad_group', 'neither results.jsonl nor summary.csv'),
    ('nothing', 'nothing to compare'), ('out_is_file', 'is a file')])
def test_cli_bad_input_is_a_usage_error_and_writes_nothing(tmp_path, runs, case, expected):
    out = tmp_path/'out'; out.mkdir(); (out/'curves.png').write_bytes(b'earlier')
    args = {'missing_run': [runs[0], tmp_path/'nope'],
            'empty_log': [runs[0], fake_run(tmp_path/'empty', 'e', {})],
            'bad_group': [runs[0], '--glue', tmp_path],
            'nothing': [],
            'out_is_file': [runs[0], '--out', out/'curves.png']}[case]
    p = compare(*args, *(['--out', out] if case != 'out_is_file' else []))
    assert p.returncode == 2, (p.returncode, p.stderr)
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith('electra-compare: error:') and expected in last, p.stderr
    assert 'Traceback' not in p.stderr
    assert (out/'curves.png').read_bytes() == b'earlier' and sorted(f.name for f in out.iterdir()) == ['curves.png']

def test_import_and_help_stay_light():
    code = ("import sys, contextlib, io\nimport electra_gdes.compare as c\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n    try: c.main(['--help'])\n    except SystemExit as e: assert e.code == 0\n"
            "heavy = [m for m in ('torch', 'pandas', 'matplotlib', 'transformers') if m in sys.modules]\nassert not heavy, heavy")
    p = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert 'GROUP_DIR' in compare('--help').stdout
