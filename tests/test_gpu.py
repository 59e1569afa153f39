"""What only a CUDA machine shows: bf16 and fp16 autocast (fp16 with the grad scaler), SDPA, `--compile`, NCCL DDP
over the GPUs present. Skipped without CUDA; `GPU_CHECK_SMOKE=1` runs the same tests on the CPU (gloo, tiny sizes),
as scripts/gpu_check.sh does in its smoke mode. Without CUDA, `test_gpu_check_smoke` runs scripts/gpu_check.sh's
smoke mode itself and reads its summary."""
import csv, math, os, shutil, subprocess, sys
from pathlib import Path
import pytest, torch

SMOKE = os.environ.get('GPU_CHECK_SMOKE') == '1'
needs_cuda = pytest.mark.skipif(not (torch.cuda.is_available() or SMOKE),
                                reason='needs CUDA: scripts/gpu_check.sh runs these on a GPU machine (GPU_CHECK_SMOKE=1: on the CPU)')
DEVICE = 'cuda' if torch.cuda.is_available() else 'cpu'
TEXT = ("The union is strong. We met in a time of trial and came through it together. "
        "Our work is not done, and the people expect the congress to act. ") * 3

def _corpus(tmp_path):
    d = tmp_path/'corpus'
    if not d.exists():
        d.mkdir()
        for i in range(12): (d/f'doc{i}.txt').write_text(f'Address number {i}.\n' + TEXT.replace('. ', '.\n'))
    return d

def _args(tmp_path, run_name, *extra):
    return ['--corpus', str(_corpus(tmp_path)), '--cache_dir', str(tmp_path/'cache'), '--output_dir', str(tmp_path/'out'),
            '--run_name', run_name, '--hidden_size', '32', '--num_heads', '2', '--intermediate_size', '64',
            '--embedding_size', '32', '--num_layers', '1', '--batch_size', '8', '--steps', '6', '--warmup_steps', '2',
            '--log_every', '1', '--checkpoint_fractions', '1', *extra]

def _pretrain_cmd():
    "The installed console script beside this interpreter, else the module (a checkout on a machine without the install)."
    script = Path(sys.executable).parent/'electra-pretrain'
    return [str(script)] if script.exists() else [sys.executable, '-m', 'electra_gdes.pretrain']

def _env():
    root = str(Path(__file__).resolve().parents[1])
    return {**os.environ, 'HF_HUB_OFFLINE': '1', 'HF_DATASETS_OFFLINE': '1', 'MPLBACKEND': 'Agg',
            'PYTHONPATH': os.pathsep.join(p for p in (root, os.environ.get('PYTHONPATH')) if p)}

def _run(cmd, timeout=600):
    r = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    return r

def _log(run_dir):
    rows = list(csv.DictReader(open(run_dir/'log.csv')))
    assert rows and all(math.isfinite(float(r['loss'])) for r in rows), rows
    return rows

def _tiny_learner(tmp_path, **overrides):
    from electra_gdes.config import pretrain_config
    from electra_gdes.train import pretrain_learner
    cfg = pretrain_config(size='tiny', corpus=str(_corpus(tmp_path)), cache_dir=str(tmp_path/'cache'), output_dir=str(tmp_path/'out'),
                          hidden_size=32, num_heads=2, intermediate_size=64, embedding_size=32, num_layers=1, batch_size=8,
                          steps=4, warmup_steps=1, log_every=1, checkpoint_fractions=(1.0,), **overrides)
    return pretrain_learner(cfg, device=torch.device(DEVICE))

@needs_cuda
@pytest.mark.parametrize('precision', ['bf16', 'fp16'])
def test_autocast_and_grad_scaler(tmp_path, precision):
    "The model computes in `precision` on the device; fp16 scales the loss (an enabled GradScaler), bf16 does not; the weights move."
    from electra_gdes.train import fit_steps
    learn = _tiny_learner(tmp_path, precision=precision, run_name=f'amp-{precision}')
    seen = []
    lin = next(m for m in learn.model.discriminator.modules() if isinstance(m, torch.nn.Linear))
    hook = lin.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    from fastai.callback.core import Callback
    scales = []
    class ScaleSeen(Callback):
        order = 100   # after MixedPrecision's after_step: the scale the next step will use
        def after_step(self): scales.append((self.learn.scaler.is_enabled(), self.learn.scaler.get_scale()))
    learn.add_cb(ScaleSeen())
    before = [p.detach().clone() for p in learn.model.parameters()]
    fit_steps(learn)
    hook.remove()
    want = torch.bfloat16 if precision == 'bf16' else torch.float16
    assert seen and set(seen) == {want}
    assert next(learn.model.parameters()).device.type == DEVICE
    assert scales and {on for on, _ in scales} == {precision == 'fp16'}
    if precision == 'fp16': assert all(0 < s < float('inf') for _, s in scales)   # the loss was scaled, by a finite scale
    moved = any(not torch.equal(a, b) for a, b in zip(before, learn.model.parameters()))
    # fp16 may skip every one of a few first steps (inf gradients at the initial scale 2**16): then the scale halved each time
    assert moved or (precision == 'fp16' and all(b[1] < a[1] for a, b in zip(scales, scales[1:]))), scales
    _log(learn.cfg.run_dir)

@needs_cuda
def test_auto_attention_is_sdpa_on_cuda(tmp_path):
    "On a GPU --attention auto is PyTorch's SDPA (on a CPU the kit's eager implementation)."
    from electra_gdes.model import CPU_ATTENTION
    learn = _tiny_learner(tmp_path, precision='bf16', run_name='sdpa')
    impls = {m.config._attn_implementation for m in learn.model.modules() if type(m).__name__ == 'ElectraSelfAttention'}
    assert impls == ({'sdpa'} if DEVICE == 'cuda' else {CPU_ATTENTION})

@needs_cuda
@pytest.mark.parametrize('precision', ['bf16', 'fp16'])
def test_cli_precision(tmp_path, precision):
    "The installed script trains under bf16 and fp16 and exits 0 with finite losses."
    _run(_pretrain_cmd() + _args(tmp_path, f'cli-{precision}', '--precision', precision))
    assert len(_log(tmp_path/'out'/f'cli-{precision}')) >= 6

@needs_cuda
def test_cli_compile(tmp_path):
    "--compile: torch.compile'd training runs and gives finite losses."
    _run(_pretrain_cmd() + _args(tmp_path, 'compiled', '--precision', 'bf16', '--compile', '--steps', '3'), timeout=900)
    _log(tmp_path/'out'/'compiled')

@needs_cuda
def test_ddp_over_the_devices_present(tmp_path):
    "torchrun with one process per GPU (NCCL); on a CPU two processes (gloo). One log, exit 0, the exported model."
    n = torch.cuda.device_count() if DEVICE == 'cuda' else 2
    _run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', str(n), '-m', 'electra_gdes.pretrain',
          *_args(tmp_path, f'ddp{n}', '--precision', 'bf16', '--batch_size', str(4 * n))], timeout=900)
    run = tmp_path/'out'/f'ddp{n}'
    assert len(_log(run)) >= 6 and (run/'discriminator'/'config.json').exists()

@pytest.mark.skipif(torch.cuda.is_available() or SMOKE,
                    reason='with CUDA run scripts/gpu_check.sh itself (its GPU mode); inside its smoke mode this would recurse')
def test_gpu_check_smoke(tmp_path):
    """scripts/gpu_check.sh without CUDA: its smoke mode runs every stage at tiny sizes, writes each stage's line and
    numbers to summary.txt, reports DDP and the compiled Learner as not run, and keeps the GPU mode within 480 s."""
    import re
    root = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in _env().items() if k not in ('GPU_CHECK_SMOKE', 'GPU_CHECK_SMOKE_COMPILE', 'OUT')}
    r = subprocess.run(['bash', str(root/'scripts'/'gpu_check.sh'), str(tmp_path/'check')], env={**env, 'OMP_NUM_THREADS': '1'},
                       capture_output=True, text=True, timeout=1500)
    summary = (tmp_path/'check'/'summary.txt').read_text()
    assert r.returncode == 0, summary + r.stderr[-2000:]
    lines = summary.splitlines()
    assert 'mode=smoke' in lines[0] and 'cuda_devices=0' in lines[0]
    gpu_total = re.search(r'stage limits, gpu mode: .* = (\d+) s', summary)
    assert gpu_total and int(gpu_total.group(1)) <= 480, summary
    for stage in ('env', 'cuda_tests', 'learner_eager', 'host', 'corpus', 'pretrain'):
        assert any(re.match(rf'{stage}: ok \(\d+ s\)', l) for l in lines), (stage, summary)
    assert 'ddp: not run: smoke mode' in summary and 'learner_compiled: not run: smoke mode' in summary
    assert re.search(r'cuda_tests: \d+ tests, 0 failed', summary), summary
    # the Learner's numbers: steps/s, tokens/s, and no MFU without a GPU's spec peak (never "nan%"); no 1M-step projection
    # bf16 where this CPU multiplies it natively, else fp32 (said in the summary)
    from electra_gdes.device import cpu_has_fast_bf16
    prec = 'bf16' if cpu_has_fast_bf16() else 'fp32'
    assert cpu_has_fast_bf16() or 'smoke mode: this CPU has no native bf16' in summary
    assert re.search(rf'learner tiny eager \({prec}\): [\d.]+ steps/s at batch 4 x 32, [\d,]+ tokens/s, [\d.]+ GFLOP/step, '
                     r'[\d.,]+ [GT]FLOP/s, MFU not computed: not a GPU', summary), summary
    assert 'nan%' not in summary and 'projected: none (eager: tiny' in summary
    assert re.search(r'host eager batch 2: \d+ kernel-level aten ops, \d+ syncing ops \(nonzero \d+, _local_scalar_dense \d+, masked_select \d+\), host [\d.]+ ms/step', summary), summary
    assert re.search(r'pretrain: 4 of 4 steps, loss [\d.]+', summary), summary
    # each stage's line came when the stage ended: in the order the stages ran, the numbers right after their stage
    order = [next(i for i, l in enumerate(lines) if re.match(p, l)) for p in
             ('env: ok', 'cuda_tests: ok', r'cuda_tests: \d+ tests', 'learner_eager: ok', 'learner tiny', 'host: ok', 'host eager',
              'pretrain: ok', 'pretrain: 4')]
    assert order == sorted(order), summary
    assert lines[-1].startswith('gpu_check done in') and 'every stage ok' in lines[-1]
