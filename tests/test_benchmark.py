"""`scripts/benchmark.py` end to end on small settings: its loss checks pass, and its JSON holds consistent numbers."""
import importlib.util, json
from pathlib import Path
import pytest
from electra_gdes.device import cpu_has_fast_bf16
from electra_gdes.model import CPU_ATTENTION

SCRIPT = Path(__file__).parents[1]/'scripts'/'benchmark.py'

@pytest.fixture(scope='module')
def benchmark():
    spec = importlib.util.spec_from_file_location('benchmark', SCRIPT)
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    return mod

# bf16 is timed where this CPU multiplies it natively (AVX512-BF16 / AMX); elsewhere it is emulated, tens of times slower
BF16 = cpu_has_fast_bf16()
OURS = 'ours-bf16' if BF16 else 'ours-fp32'

def test_pretrain_and_finetune_sections(tmp_path, benchmark, capsys):
    out = tmp_path/'bench.json'
    rc = benchmark.main(['--sections', 'pretrain', 'finetune', '--sizes', 'tiny', '--steps', '1', '--batch-size', '4',
                         '--finetune-steps', '1', '--finetune-repeats', '1', '--breakdown', OURS, 'baseline',
                         '--cache-dir', str(tmp_path/'cache'), '--out', str(out)])
    assert rc == 0   # the losses of the variants agreed (fp32 to 1e-5, bf16 to 1e-2; fine-tuning paddings to 1e-5)
    res = json.loads(out.read_text())
    tiny = res['sizes']['tiny']
    assert tiny['fp32_loss_rel_diff'] < 1e-5
    v = tiny['variants']
    assert set(v) == {'baseline', 'ours-fp32', *(['ours-bf16'] if BF16 else [])}
    if BF16:
        assert tiny['bf16_loss_rel_diff'] < 1e-2
        assert v['ours-fp32']['flops_per_step'] == pytest.approx(v['ours-bf16']['flops_per_step'], rel=1e-3)
    else:
        assert tiny['bf16_loss_rel_diff'] is None and 'ours-bf16 not timed' in capsys.readouterr().out
    # the baseline computes generator logits at every position: more FLOPs than ours
    assert v['baseline']['flops_per_step'] > v['ours-fp32']['flops_per_step'] > 0
    assert v[OURS]['attention'] == v['ours-fp32']['attention'] == CPU_ATTENTION and v['baseline']['attention'] == 'sdpa'
    for x in v.values():
        # one timed batch of 4 examples: real tokens per second are its tokens over its step time
        assert x['tokens_per_s'] == pytest.approx(tiny['mean_length'] * 4 / x['sec_per_step'], rel=1e-6)
        assert x['speedup_vs_baseline'] == pytest.approx(x['tokens_per_s'] / v['baseline']['tokens_per_s'])
        assert 0 < x['fraction_of_bf16_peak']
        # bf16's matmul peak is above fp32's only where the CPU multiplies bf16 natively (AVX512-BF16 / AMX)
        if cpu_has_fast_bf16(): assert x['fraction_of_bf16_peak'] < x['fraction_of_fp32_peak']
    loop = tiny['learner']   # the headline variant inside pretrain_learner's loop: one timed step after the one that starts the timer
    assert len(loop['step_times']) == 1 and loop['sec_per_step'] > 0
    assert loop['hours_per_1M_steps'] == pytest.approx(loop['sec_per_step'] * 1e6 / 3600)
    assert loop['speedup_vs_baseline'] == pytest.approx(loop['tokens_per_s'] / v['baseline']['tokens_per_s'])
    assert set(tiny['breakdown']) == {OURS, 'baseline'}
    for b in tiny['breakdown'].values():
        assert sum(b['groups_s'].values()) == pytest.approx(b['op_time_s'])
        assert b['groups_s']['matrix products'] > 0 and b['optimizer_s'] > 0
    ft = res['finetune']
    assert ft['loss_rel_diff'] < 1e-5
    assert all(n == 128 for n in ft['padded_length']['fixed-128']) and max(ft['padded_length']['dynamic']) <= 128

def test_compiled_variant(tmp_path, benchmark):
    "--compile: the RTD model under torch.compile (as `--compile` trains it) gives the eager loss at its precision and is timed too."
    out = tmp_path/'bench.json'
    rc = benchmark.main(['--sections', 'pretrain', '--sizes', 'tiny', '--steps', '1', '--batch-size', '4', '--compile',
                         '--no-learner', '--breakdown', '--cache-dir', str(tmp_path/'cache'), '--out', str(out)])
    assert rc == 0
    tiny = json.loads(out.read_text())['sizes']['tiny']
    assert tiny['compiled_loss_rel_diff'] < 1e-2 and tiny['compile_seconds'] > 0
    x = tiny['variants'][OURS + '-compiled']
    assert x['sec_per_step'] > 0 and x['flops_per_step'] == tiny['variants'][OURS]['flops_per_step']
    assert 'learner' not in tiny and tiny['breakdown'] == {}

def test_host_section(tmp_path):
    """--sections host, tiny, in a subprocess: the real Learner's step at ELECTRA-small depth, per steady-state step, for
    this checkout (eager) and the baseline library of a git commit (HEAD here), with consistent counts (no speeds asserted)."""
    import os, subprocess, sys
    out = tmp_path/'host.json'
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'HF_HUB_OFFLINE': '1', 'HF_DATASETS_OFFLINE': '1'}
    r = subprocess.run([sys.executable, str(SCRIPT), '--sections', 'host', '--threads', '1', '--host-batches', '2', '4',
                        '--host-warmup', '1', '--host-steps', '2', '--host-profiled', '1', '--host-max-length', '16',
                        '--host-baseline', 'HEAD', '--cache-dir', str(tmp_path/'cache'), '--out', str(out)],
                       env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    assert 'host overhead of the real training step' in r.stdout and 'leaf ops' in r.stdout
    host = json.loads(out.read_text())['host']
    assert host['steps'] == dict(warmup=1, timed=2, profiled=1) and host['model']['max_length'] == 16
    # the baseline runs where git can read HEAD (a checkout); elsewhere the JSON says why it did not
    names = {'eager', 'baseline'} if host['baseline_ref'] == 'HEAD' else {'eager'}
    assert set(host['variants']) == names, host['baseline_ref']
    for name, rows in host['variants'].items():
        assert set(rows) == {'2', '4'}
        for b, x in rows.items():
            assert x['status'] == 'ok' and x['batch_size'] == int(b) and x['discriminator_layers'] == 12 and not x['compile']
            assert x['library'] == ('baseline' if name == 'baseline' else 'this checkout')
            assert x['aten_ops'] >= x['leaf_aten_ops'] > 1000   # 12 + 12 layers forward, backward and optimizer
            assert x['syncs'] == pytest.approx(sum(x['syncs_by_op'].values())) and x['syncs'] >= 0
            assert set(x['syncs_by_op']) == set(host['sync_ops'])
            assert len(x['step_ms']) == 2 and 0 < x['host_ms'] == min(x['step_ms']) <= x['host_ms_median']
            assert x['window_ms_per_step'] > 0 and x['op_ms'] > 0
        growth = rows['4']['leaf_aten_ops'] / rows['2']['leaf_aten_ops']
        assert all(x['ops_growth_with_batch'] == pytest.approx(growth) for x in rows.values())
        if name != 'baseline' and 'baseline' in host['variants']:
            base = host['variants']['baseline']
            assert all(x['host_ms_vs_baseline'] == pytest.approx(x['host_ms'] / base[b]['host_ms']) for b, x in rows.items())
