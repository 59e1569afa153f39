"""The pretraining loop end to end: resume after a real SIGTERM in another process gives the same losses bit for bit,
clipping happens on unscaled fp16 gradients, checkpoint writes are atomic, the default script's outputs."""
import os, signal, subprocess, sys, time
from pathlib import Path
import numpy as np, pytest, torch
from fastai.callback.core import Callback
from fastai.callback.training import GradientClip
from fastai.callback.fp16 import MixedPrecision
import electra_gdes.train as train
from electra_gdes.config import pretrain_config
from electra_gdes.model import CPU_ATTENTION, BitsDropout
from electra_gdes.train import (pretrain_learner, fit_steps, read_log, write_checkpoint, read_checkpoint, latest_checkpoint,
                                checkpoint_path)

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

def test_resume_after_sigterm_gives_the_same_losses(tmp_path):
    full = _script(_cli_args(tmp_path, 'full'))
    out, _ = full.communicate(timeout=600)
    assert full.returncode == 0, out
    # the same run, stopped by SIGTERM once it has logged a few steps, then resumed in a new process
    log_path = tmp_path/'out'/'cut'/'log.csv'
    cut = _script(_cli_args(tmp_path, 'cut'))
    while cut.poll() is None and not (log_path.exists() and len(read_log(log_path)) >= 3): time.sleep(0.05)
    cut.send_signal(signal.SIGTERM)
    out, _ = cut.communicate(timeout=600)
    assert cut.returncode == 128 + signal.SIGTERM, out
    stopped_at = read_log(log_path)[-1]['step']
    assert 3 <= stopped_at < 24, out
    assert (tmp_path/'out'/'cut'/'checkpoints'/f'step-{stopped_at:08d}.pt').exists()
    again = _script(_cli_args(tmp_path, 'cut', '--resume'))
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

def _word_level_data():
    "A 32-word WordLevel tokenizer and 40 cyclic 22-token examples."
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast
    import datasets
    vocab = {t: i for i, t in enumerate(['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'] + [f'w{i}' for i in range(27)])}
    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(WordLevel(vocab, unk_token='[UNK]')), pad_token='[PAD]',
                                  unk_token='[UNK]', cls_token='[CLS]', sep_token='[SEP]', mask_token='[MASK]')
    rows = [{'input_ids': [2] + [5 + (s + j) % 20 for j in range(20)] + [3], 'token_type_ids': [0] * 22} for s in range(40)]
    return tok, datasets.Dataset.from_list(rows)

def _tiny_cfg(tmp_path, **kw):
    return pretrain_config('electra', 'tiny', hidden_size=32, num_heads=2, intermediate_size=64, embedding_size=32, num_layers=1,
                           steps=10, warmup_steps=2, batch_size=8, checkpoint_fractions=(), output_dir=str(tmp_path), **kw)

def test_fp16_clipping_sees_unscaled_gradients(tmp_path):
    tok, ds = _word_level_data()
    cfg = _tiny_cfg(tmp_path, clip_norm=0.05, precision='fp16')
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
                                                           ('bf16', 'sdpa', 'sdpa'), ('fp32', 'eager', 'eager')])
def test_learner_picks_the_attention_implementation(tmp_path, precision, attention, expected):
    "On a CPU, --attention auto gets the CPU implementation (eager attention, 31-bit-integer dropout masks); --attention overrides it."
    tok, ds = _word_level_data()
    learn = pretrain_learner(_tiny_cfg(tmp_path, precision=precision, attention=attention), ds, tok, device=torch.device('cpu'))
    layers = [m for m in learn.model.modules() if type(m).__name__ == 'ElectraSelfAttention']
    assert len(layers) == 2 and {m.config._attn_implementation for m in layers} == {expected}
    dropouts = {type(m) for m in learn.model.modules() if isinstance(m, torch.nn.Dropout)}
    assert dropouts == ({BitsDropout} if expected == CPU_ATTENTION else {torch.nn.Dropout})

def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    p = checkpoint_path(tmp_path, 5)
    write_checkpoint({'format': 1, 'step': 5, 'w': torch.arange(3.)}, p)
    def crash(*a, **k): raise OSError('disk full')
    monkeypatch.setattr(train.os, 'replace', crash)
    with pytest.raises(OSError): write_checkpoint({'format': 1, 'step': 5, 'w': torch.zeros(3)}, p)
    monkeypatch.undo()
    assert torch.equal(read_checkpoint(p)['w'], torch.arange(3.))   # the old checkpoint is intact
    assert latest_checkpoint(tmp_path) == p

NATO = 'alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa'.split()

def _cyclic_corpus(path, n_docs=300, seed=0):
    "Documents of 8-word runs through a fixed cycle of words: each token is predictable from its neighbours."
    rng = np.random.default_rng(seed)
    docs = []
    for _ in range(n_docs):
        s = int(rng.integers(len(NATO)))
        docs.append(' '.join(' '.join(NATO[(s + 3*k + j) % len(NATO)] for j in range(8)) + '.' for k in range(12)))
    path.write_text('\n\n'.join(docs))
    return path

def test_discriminator_beats_the_all_original_baseline(tmp_path):
    """A tiny run on a repetitive corpus: on held-out batches the discriminator is more accurate than answering
    'original' everywhere. The all-original baseline is right on TN + FP tokens, the discriminator on TP + TN, so it
    beats the baseline exactly when TP > FP, i.e. replaced-token precision > 0.5 (with some recall).
    The generator samples at temperature 3 so that it keeps replacing tokens after it has learned the corpus."""
    from electra_gdes.data import load_tokenizer, build_pretrain_dataset
    from electra_gdes.pretrain import held_out_split
    cfg = pretrain_config('electra', 'tiny', corpus=str(_cyclic_corpus(tmp_path/'cyclic.txt')), cache_dir=str(tmp_path/'cache'),
                          output_dir=str(tmp_path/'out'), steps=150, warmup_steps=15, lr=1e-3, temperature=3.0,
                          log_every=25, checkpoint_fractions=(1.0,))
    tok = load_tokenizer(cfg)
    train_ds, held_out = held_out_split(build_pretrain_dataset(cfg, tok), cfg.batch_size)
    learn = fit_steps(pretrain_learner(cfg, train_ds, tok, valid_dataset=held_out))
    names = ['valid_loss'] + [m.name for m in learn.metrics]
    res = dict(zip(names, learn.validate()))
    assert res['replaced_precision'] > 0.7 and res['replaced_recall'] > 0.3, res
    # and the untrained model does not: the same check would fail before training
    untrained = pretrain_learner(cfg, train_ds, tok, valid_dataset=held_out)
    res0 = dict(zip(names, untrained.validate()))
    assert not (res0['replaced_precision'] > 0.7 and res0['replaced_recall'] > 0.3), res0

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
    tok, ds = _word_level_data()
    class Tracker:
        def __init__(self): self.rows, self.closed = [], 0
        def log(self, row, step): self.rows.append((step, row))
        def close(self): self.closed += 1
    t = Tracker()
    cfg = _tiny_cfg(tmp_path, log_every=2)
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
    tok, ds = _word_level_data()
    learn = pretrain_learner(_tiny_cfg(tmp_path, mask_unk=mask_unk), ds, tok)
    rtd = next(cb for cb in learn.cbs if isinstance(cb, RTDCallback))
    assert (tok.unk_token_id in rtd.special_ids) == (not mask_unk)
    assert {tok.cls_token_id, tok.sep_token_id, tok.pad_token_id} <= set(rtd.special_ids)
    unk = torch.full((16, 22), tok.unk_token_id)
    unk[:, 0], unk[:, -1] = tok.cls_token_id, tok.sep_token_id
    masked_ids, is_masked = rtd._mask(unk, torch.ones_like(unk), torch.Generator().manual_seed(0))
    assert bool(is_masked.any()) == mask_unk
    assert not is_masked[:, [0, -1]].any()
