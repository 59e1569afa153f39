"""scripts/tiny_recipe_search.py as a user runs it: a subprocess, its exit code, the table and the plot it writes."""
import csv, os, subprocess, sys
from pathlib import Path

SCRIPT = Path(__file__).parents[1]/'scripts'/'tiny_recipe_search.py'
WORDS = 'the union is strong and the people expect congress to act on the work that is not done'.split()

def _search(tmp_path, *args):
    corpus = tmp_path/'corpus.txt'
    if not corpus.exists():
        corpus.write_text('\n\n'.join(' '.join(WORDS[(d + j) % len(WORDS)] for j in range(120)) + '.' for d in range(60)))
    env = {**os.environ, 'HF_HUB_OFFLINE': '1', 'HF_DATASETS_OFFLINE': '1', 'OMP_NUM_THREADS': '1', 'MPLBACKEND': 'Agg'}
    p = subprocess.run([sys.executable, str(SCRIPT), '--budget_s', '1', '--timing_steps', '3', '--held_out', '8', '--corpus', str(corpus),
                        '--cache_dir', str(tmp_path/'cache'), '--out', str(tmp_path/'out'), *args], env=env, capture_output=True,
                       text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    return list(csv.DictReader(open(tmp_path/'out'/'results.csv')))

def test_recipe_search_writes_its_table_and_plot(tmp_path):
    # two candidates trained at once in worker processes; 'a+b' merges the overrides of two candidates
    rows = _search(tmp_path, '--candidates', 'preset', 'lr5e-3+gen1/4', '--jobs', '2')
    assert [r['candidate'] for r in rows] == ['preset', 'lr5e-3+gen1/4']
    assert all(int(r['steps']) >= 10 and 0 <= float(r['auc']) <= 1 for r in rows)
    assert int(rows[1]['budget_s']) == round(int(rows[1]['steps']) * float(rows[1]['sec_per_step']))
    table = (tmp_path/'out'/'results.md').read_text()
    assert '| preset |' in table and '| lr5e-3+gen1/4 | lr=0.005 gen_width_ratio=0.25 |' in table and 'OMP_NUM_THREADS=1' in table
    assert 'trained 2 at a time' in table
    assert (tmp_path/'out'/'auc.png').stat().st_size > 10_000
    assert (tmp_path/'out'/'runs'/'preset'/'eval.csv').exists() and (tmp_path/'out'/'runs'/'lr5e-3+gen1_4'/'eval.csv').exists()
    # --add keeps the earlier rows and replaces those of the candidates run again
    before = {r['candidate']: r for r in rows}
    # (not the bf16 candidate here: a CPU without native bf16 emulates it, tens of times slower)
    rows = _search(tmp_path, '--candidates', 'preset', 'len64', '--add', '--jobs', '2')
    assert [r['candidate'] for r in rows] == ['lr5e-3+gen1/4', 'preset', 'len64']
    assert rows[0] == before['lr5e-3+gen1/4']
    assert '| len64 | max_length=64 |' in (tmp_path/'out'/'results.md').read_text()

def test_recipe_search_rejects_an_unknown_candidate(tmp_path):
    p = subprocess.run([sys.executable, str(SCRIPT), '--candidates', 'huge', '--out', str(tmp_path/'out')],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "invalid choice: 'huge'" in p.stderr and not (tmp_path/'out').exists()
    p = subprocess.run([sys.executable, str(SCRIPT), '--candidates', 'preset+hueg', '--out', str(tmp_path/'out')],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "invalid choice: 'hueg'" in p.stderr and "join them with '+'" in p.stderr
