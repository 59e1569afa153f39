"""The pretraining loop end to end: resume after a real SIGTERM in another process gives the same losses bit for bit,
clipping happens on unscaled fp16 gradients, checkpoint writes are atomic, the default script's outputs; training samples
with cfg.sampling's published sampler (Gumbel-max through `rtd.gumbel_noise`, or multinomial) from the softmax."""
import os, signal, subprocess, sys, time
from pathlib import Path
import numpy as np, pytest, torch
from fastai.callback.core import Callback
from fastai.callback.training import GradientClip
from fastai.callback.fp16 import MixedPrecision
import electra_gdes.train as train
from electra_gdes.config import pretrain_config
from electra_gdes.model import CPU_ATTENTION, SDPA_ATTENTION, BitsDropout
from helpers import word_level_data, tiny_pretrain_cfg
from electra_gdes.train import pretrain_learner, fit_steps
from electra_gdes.logs import read_log, global_step
from electra_gdes.checkpoint import write_checkpoint, read_checkpoint, latest_checkpoint, checkpoint_path

TEXT = ("The union is strong. We met in a time of trial and came through it together. "
        "Our work is not done, and the people expect the congress to act. ") * 3

def _corpus(tmp_path):
    d = tmp_path/'corpus'
    if d.exists(): return d
    d.mkdir()
    for i in range(12): (d/f'doc{i}.txt').write_text(f'Address number {i}.\n' + TEXT.replace('. ', '.\n'))
    return d

def _cli_args(tmp_path, run_name, *extra):
    return ['--corpus', str(_corpus(tmp_path)), '--cache_dir', str(tmp_path/'cache'), '--output_dir', str(tmp_path/'out'),
            '--run_name', run_name, '--hidden_size', '32', '--num_heads', '2', '--intermediate_size', '64',
            '--embedding_size', '32', '--num_layers', '1', '--batch_size', '4', '--steps', '24', '--warmup_steps', '4',
            '--log_every', '1', '--checkpoint_fractions', '0.5', '1', *extra]

def _script(args, **kw):
    env = {**os.environ, 'HF_HUB_OFFLINE': '1', 'HF_DATASETS_OFFLINE': '1', 'PYTHONHASHSEED': '0', 'MPLBACKEND': 'Agg'}
    return subprocess.Popen([sys.executable, '-m', 'electra_gdes.pretrain', *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kw)

@pytest.mark.parametrize('precision', ['fp32', 'bf16'])
def test_resume_after_sigterm_gives_the_same_losses(tmp_path, precision):
    full = _script(_cli_args(tmp_path, 'full', '--precision', precision))
    out, _ = full.communicate(timeout=600)
    assert full.returncode == 0, out
    # the same run, stopped by SIGTERM once it has logged a few steps, then resumed in a new process
    log_path = tmp_path/'out'/'cut'/'log.csv'
    cut = _script(_cli_args(tmp_path, 'cut', '--precision', precision))
    while cut.poll() is None and not (log_path.exists() and len(read_log(log_path)) >= 3): time.sleep(0.05)
    cut.send_signal(signal.SIGTERM)
    out, _ = cut.communicate(timeout=600)
    assert cut.returncode == 128 + signal.SIGTERM, out
    stopped_at = read_log(log_path)[-1]['step']
    assert 3 <= stopped_at < 24, out
    assert (tmp_path/'out'/'cut'/'checkpoints'/f'step-{stopped_at:08d}.pt').exists()
    again = _script(_cli_args(tmp_path, 'cut', '--resume', '--precision', precision))
    out, _ = again.communicate(timeout=600)
    assert again.returncode == 0, out
    assert f'at step {stopped_at} of 24' in out
    a, b = read_log(tmp_path/'out'/'full'/'log.csv'), read_log(log_path)
    assert [r['step'] for r in b] == list(range(1, 25))
    for k in ('loss', 'mlm_loss', 'disc_loss', 'lr', 'gen_acc', 'disc_acc'):
        assert [r[k] for r in a] == [r[k] for r in b], k
    for d in ('discriminator', 'generator'): assert (tmp_path/'out'/'cut'/d/'config.json').exists()
    assert (tmp_path/'out'/'cut'/'loss.png').stat().st_size > 0

class NormProbe(Callback):
    "The global gradient norm at an `order` inside `before_step`."
    def __init__(self, order): self.order, self.norms = order, []
    def before_step(self):
        self.norms.append(torch.nn.utils.get_total_norm([p.grad for p in self.learn.model.parameters() if p.grad is not None]).item())

def test_fp16_clipping_sees_unscaled_gradients(tmp_path):
    tok, ds = word_level_data()
    cfg = tiny_pretrain_cfg(tmp_path, clip_norm=0.05, precision='fp16')
    # between MixedPrecision (unscales) and GradientClip, and after GradientClip: what the optimizer gets
    before, after = NormProbe(MixedPrecision.order + 0.7), NormProbe(GradientClip.order + 0.5)
    learn = pretrain_learner(cfg, ds, tok, cbs=[before, after])
    fit_steps(learn)
    # the first steps overflow at the initial scale 2**16 and are skipped before either probe
    assert len(after.norms) >= 2 and len(before.norms) == len(after.norms)
    for raw, clipped in zip(before.norms, after.norms):
        assert raw > cfg.clip_norm                                   # unscaled RTD gradients are far above 0.05 ...
        assert clipped == pytest.approx(cfg.clip_norm, rel=1e-3)     # ... and the optimizer sees exactly clip_norm,
        # not clip_norm / scale (clipping before unscaling would give ~0.05 / 65536)

@pytest.mark.parametrize('precision,attention,expected', [('bf16', 'auto', CPU_ATTENTION), ('fp32', 'auto', CPU_ATTENTION),
                                                           ('bf16', 'sdpa', SDPA_ATTENTION), ('fp32', 'eager', 'eager')])
def test_learner_picks_the_attention_implementation(tmp_path, precision, attention, expected):
    "On a CPU, --attention auto gets the CPU implementation (eager attention, 31-bit-integer dropout masks); --attention overrides it."
    tok, ds = word_level_data()
    learn = pretrain_learner(tiny_pretrain_cfg(tmp_path, precision=precision, attention=attention), ds, tok, device=torch.device('cpu'))
    layers = [m for m in learn.model.modules() if type(m).__name__ == 'ElectraSelfAttention']
    assert len(layers) == 2 and {m.config._attn_implementation for m in layers} == {expected}
    dropouts = {type(m) for m in learn.model.modules() if isinstance(m, torch.nn.Dropout)}
    assert dropouts == ({BitsDropout} if expected == CPU_ATTENTION else {torch.nn.Dropout})

def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    p = checkpoint_path(tmp_path, 5)
    write_checkpoint({'format': 1, 'step': 5, 'w': torch.arange(3.)}, p)
    def crash(*a, **k): raise OSError('disk full')
    monkeypatch.setattr(os, 'replace', crash)
    with pytest.raises(OSError): write_checkpoint({'format': 1, 'step': 5, 'w': torch.zeros(3)}, p)
    monkeypatch.undo()
    assert torch.equal(read_checkpoint(p)['w'], torch.arange(3.))   # the old checkpoint is intact
    assert latest_checkpoint(tmp_path) == p

def test_torchrun_two_processes_run_the_pretraining_script(tmp_path):
    "`torchrun` with two gloo processes runs `electra-pretrain`: one log (every step once), one exported discriminator."
    env = {**os.environ, 'HF_HUB_OFFLINE': '1', 'HF_DATASETS_OFFLINE': '1', 'OMP_NUM_THREADS': '1', 'MPLBACKEND': 'Agg'}
    p = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2',
                        '-m', 'electra_gdes.pretrain', *_cli_args(tmp_path, 'ddp')], env=env, capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    run = tmp_path/'out'/'ddp'
    test_steps = [r['step'] for r in read_log(run/'log.csv')]
    assert test_steps == list(range(1, 25)), test_steps
    from transformers import AutoModel
    assert AutoModel.from_pretrained(run/'discriminator').config.hidden_size == 32
    assert latest_checkpoint(run) == checkpoint_path(run, 24)

def test_trackers_get_every_logged_row_and_are_closed(tmp_path):
    tok, ds = word_level_data()
    class Tracker:
        def __init__(self): self.rows, self.closed = [], 0
        def log(self, row, step): self.rows.append((step, row))
        def close(self): self.closed += 1
    t = Tracker()
    cfg = tiny_pretrain_cfg(tmp_path, log_every=2)
    cfg.steps = 6
    fit_steps(pretrain_learner(cfg, ds, tok, trackers=[t]))
    csv_rows = read_log(cfg.run_dir/'log.csv')
    assert [s for s, _ in t.rows] == [r['step'] for r in csv_rows] == [2, 4, 6]   # every 2 steps and the last
    for (s, row), r in zip(t.rows, csv_rows):
        assert row['step'] == s and row['loss'] == pytest.approx(r['loss']) and row['replaced_f1'] == pytest.approx(r['replaced_f1'])
    assert t.closed == 1

@pytest.mark.parametrize('mask_unk', [True, False])
def test_mask_unk_decides_whether_unk_may_be_masked(tmp_path, mask_unk):
    "ELECTRA's candidates exclude only [CLS], [SEP], [MASK] and padding; the DeBERTa presets keep [UNK] unmasked as well."
    from electra_gdes.train import RTDCallback
    tok, ds = word_level_data()
    learn = pretrain_learner(tiny_pretrain_cfg(tmp_path, mask_unk=mask_unk), ds, tok)
    rtd = next(cb for cb in learn.cbs if isinstance(cb, RTDCallback))
    assert (tok.unk_token_id in rtd.special_ids) == (not mask_unk)
    assert {tok.cls_token_id, tok.sep_token_id, tok.pad_token_id} <= set(rtd.special_ids)
    unk = torch.full((16, 22), tok.unk_token_id)
    unk[:, 0], unk[:, -1] = tok.cls_token_id, tok.sep_token_id
    masked_ids, is_masked = rtd._mask(unk, torch.ones_like(unk), torch.Generator().manual_seed(0))
    assert bool(is_masked.any()) == mask_unk
    assert not is_masked[:, [0, -1]].any()

# ---------------------------------------------------------------- the generator's samples in training

class SampleProbe(Callback):
    "What the model got and sampled in each training micro-batch: its noise, generator logits and sampled ids (and the step)."
    order = 0
    def __init__(self): self.seen, self.steps = [], []
    def after_pred(self):
        if not self.training: return
        self.seen.append((self.learn.xb[4], self.pred.mlm_logits.detach(), self.pred.sampled_ids))
        self.steps.append(global_step(self.learn))

def _sampling_run(tmp_path, cbs, **kw):
    tok, ds = word_level_data()
    cfg = tiny_pretrain_cfg(tmp_path, steps=2, grad_accum=2, **kw)
    fit_steps(pretrain_learner(cfg, ds, tok, cbs=cbs, device=torch.device('cpu')))
    return cfg

def _lowbias32(x):
    "Wellons' lowbias32 in numpy's uint32 arithmetic (wrapping by definition): the published hash, not the library's code."
    x = np.asarray(x, dtype=np.uint32)
    x = x ^ (x >> np.uint32(16)); x = x * np.uint32(0x7FEB352D)
    x = x ^ (x >> np.uint32(15)); x = x * np.uint32(0x846CA68B)
    return x ^ (x >> np.uint32(16))

def _reference_uniforms(seed, step, rows, slots, vocab):
    "Uniform (row, k, v) of training step `step`: the top 24 bits of lowbias32(key(row, k) ^ lowbias32(v)) / 2**24."
    base = train.step_seed(seed, train.TRAIN_SAMPLING, step, 0)
    lo, hi = np.uint32(base & 0xFFFFFFFF), np.uint32((base >> 32) & 0xFFFFFFFF)
    row_key = _lowbias32(_lowbias32(np.asarray(rows, dtype=np.uint32) ^ lo) ^ hi)
    keys = _lowbias32(row_key[:, None] ^ np.arange(slots, dtype=np.uint32))
    return (_lowbias32(keys[..., None] ^ _lowbias32(np.arange(vocab, dtype=np.uint32))) >> np.uint32(8)) / 2**24

@pytest.mark.parametrize('temperature', [1.0, 2.0])
def test_training_samples_by_gumbel_max_at_the_known_uniforms(tmp_path, temperature):
    """With cfg.sampling='gumbel' every training micro-batch's samples are `argmax(-log(-log(u + 1e-9) + 1e-9) + logits / T)` where
    `u` of the `k`-th masked position of global row `r` of step `t` and vocabulary entry `v` is a hash of (seed, t, r, k, v)
    alone (`_reference_uniforms`, written here from the published hash). The inverse-CDF sampler at the same uniforms
    draws other tokens."""
    from electra_gdes.rtd import gumbel_noise, inverse_cdf_sample
    probe = SampleProbe()
    cfg = _sampling_run(tmp_path, [probe], sampling='gumbel', temperature=temperature)
    assert len(probe.seen) == 4 and probe.steps == [0, 0, 1, 1]   # 2 steps x 2 micro-batches of 4 rows
    differs = 0
    for j, ((noise, logits, sampled), step) in enumerate(zip(probe.seen, probe.steps)):
        rows = range(4 * (j % 2), 4 * (j % 2) + 4)   # the micro-batch's rows of the global batch
        u64 = torch.from_numpy(_reference_uniforms(cfg.seed, step, rows, logits.shape[1], logits.shape[2]))
        u = noise.uniforms(logits.shape[2])
        torch.testing.assert_close(u.double(), u64, rtol=0, atol=0)
        g = -torch.log(-torch.log(u64 + 1e-9) + 1e-9)   # the published formula (REFERENCE.md section 1), in float64
        expected = (g + logits.double() / temperature).argmax(-1)
        assert torch.equal(sampled, (gumbel_noise(u.clone()) + logits / temperature).argmax(-1))   # rtd.gumbel_sample's arithmetic
        assert torch.equal(sampled, expected)
        differs += int((inverse_cdf_sample(logits, temperature, u[..., 0]) != sampled).sum())
    assert differs > 0

def test_training_gumbel_noise_comes_from_rtd(tmp_path, monkeypatch):
    """Training's Gumbel-max calls `rtd.gumbel_noise` on `[rows, slots, vocab]` uniforms of each micro-batch: noise that
    puts a large value on one token makes every sample that token. The multinomial sampler does not call it."""
    import electra_gdes.rtd as rtd
    calls = []
    def forced(u):
        calls.append((u.numel(), u.shape[-1]))
        return torch.zeros_like(u).index_fill_(-1, torch.tensor([7]), 1e6)
    monkeypatch.setattr(rtd, 'gumbel_noise', forced)
    probe = SampleProbe()
    _sampling_run(tmp_path/'gumbel', [probe], sampling='gumbel')
    # on a CPU the noise is made in cache-sized blocks: all of each micro-batch's uniforms go through it
    assert sum(n for n, _ in calls) == sum(logits.numel() for _, logits, _ in probe.seen) and len(probe.seen) == 4
    assert {v for _, v in calls} == {probe.seen[0][1].shape[-1]}
    assert all(bool((sampled == 7).all()) for _, _, sampled in probe.seen)
    calls.clear()
    probe = SampleProbe()
    _sampling_run(tmp_path/'multinomial', [probe], sampling='multinomial')
    assert calls == [] and len(probe.seen) == 4
    assert not all(bool((sampled == 7).all()) for _, _, sampled in probe.seen)

def _chi_square(samples, probs):
    counts = torch.bincount(samples, minlength=len(probs)).double()
    expected = probs.double() * len(samples)
    return float(((counts - expected) ** 2 / expected).sum())

@pytest.mark.parametrize('sampling', ['gumbel', 'multinomial'])
def test_training_samplers_draw_from_the_softmax(sampling):
    """4,000 masked positions with the same logits, sampled as training samples them: the counts fit softmax(logits / T)
    (chi-square, 5 degrees of freedom, below its 0.1% point 20.5), and clearly do not fit softmax(logits)."""
    from electra_gdes.rtd import SAMPLER_FUNCS
    logits, T = torch.tensor([1.0, 0.0, -1.0, 2.0, 0.5, -2.0]), 2.0
    # 4 masked slots in each of 1,000 rows of step 1, as training keys them
    noise = train.sampling_uniforms(0, 1, torch.arange(1000), 4)
    samples = SAMPLER_FUNCS[sampling](logits.expand(1000, 4, -1), T, noise).flatten()
    assert _chi_square(samples, torch.softmax(logits / T, -1)) < 20.5
    assert _chi_square(samples, torch.softmax(logits, -1)) > 100   # the test can tell temperatures apart
