"""`scripts/benchmark.py --sections squad` on small settings: the windows padded to 512 and to their batch's longest give
the same loss, and the JSON's ratios are those of its own rates."""
import importlib.util, json
from pathlib import Path
import pytest
from electra_gdes.squad_data import make_practice_squad

SCRIPT = Path(__file__).parents[1]/'scripts'/'benchmark.py'
CORPUS = Path(__file__).parent/'fixtures'/'squad'/'corpus.txt'


def test_squad_section(tmp_path):
    spec = importlib.util.spec_from_file_location('benchmark', SCRIPT)
    bench = importlib.util.module_from_spec(spec); spec.loader.exec_module(bench)
    practice = make_practice_squad(tmp_path/'practice', CORPUS.read_text().split('\n\n'), n_train=30, n_dev=10)
    out = tmp_path/'bench.json'
    rc = bench.main(['--sections', 'squad', '--squad-size', 'tiny', '--squad-dir', str(practice), '--batch-size', '2',
                     '--squad-steps', '1', '--squad-repeats', '1', '--cache-dir', str(tmp_path/'cache'), '--out', str(out)])
    assert rc == 0   # the eval losses padded to 512 and not agreed to 1e-5
    r = json.loads(out.read_text())['squad']
    assert r['loss_rel_diff'] < 1e-5
    assert all(n == 512 for n in r['padded_length']['pad-512'])
    assert all(n <= 512 for v in ('dynamic', 'length-grouped') for n in r['padded_length'][v])
    v = r['variants']
    assert r['speedup_dynamic_vs_pad512'] == pytest.approx(v['dynamic']['examples_per_s'] / v['pad-512']['examples_per_s'])
    assert r['speedup_length_grouped_vs_pad512'] == pytest.approx(v['length-grouped']['examples_per_s'] / v['pad-512']['examples_per_s'])
    assert r['window_tokens']['max'] <= 512 and r['window_tokens']['n'] == 2 * 2
