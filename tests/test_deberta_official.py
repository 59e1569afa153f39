"""Issue 18: DeBERTaV3 as its official code trains it (microsoft/DeBERTa: `DeBERTa/apps/models/masked_language_model.py`,
`DeBERTa/apps/tasks/rtd_task.py`, `DeBERTa/training/trainer.py`). Each reference below transcribes the official
computation step by step (its mask form, its position ids, its order of operations), on the same weights and inputs as
the library, and the two agree to 1e-5."""
import copy
import pytest
import torch
import torch.nn.functional as F
from transformers import DebertaV2ForMaskedLM
from electra_gdes.config import pretrain_config
from electra_gdes.model import (build_rtd_model, DebertaV2ForMaskedLMWithEMD, enhanced_mask_decoder, load_rtd_model,
                                mlm_head_logits)
from electra_gdes.export import save_discriminator, save_generator
from helpers import word_level_data


def deberta_cfg(tmp_path=None, **kw):
    "DeBERTa tiny shrunk: a 4-layer discriminator, a 2-layer generator (the official EMD needs two), 32 wide."
    base = dict(hidden_size=32, num_heads=2, intermediate_size=64, embedding_size=32, num_layers=4, max_position_embeddings=64,
                max_length=32, vocab_size=32, steps=10, warmup_steps=2, batch_size=8, checkpoint_fractions=(),
                position_buckets=16, log_every=100)
    if tmp_path is not None: base['output_dir'] = str(tmp_path)
    return pretrain_config('deberta', 'tiny', **{**base, **kw})


def batch(tok, n=4, length=20, seed=0):
    "Rows of `length` tokens, the last rows padded; about 15% of the real non-special tokens masked."
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, len(tok), (n, length), generator=g)
    ids[:, 0], attn = 2, torch.ones_like(ids)
    for i in range(n):
        real = length - 3 * i
        ids[i, real - 1] = 3
        ids[i, real:], attn[i, real:] = 0, 0
    is_masked = (torch.rand(ids.shape, generator=g) < 0.15) & attn.bool() & (ids > 4)
    is_masked[:, 3] = True                                             # at least one per row
    return ids, attn, torch.zeros_like(ids), is_masked, ids.masked_fill(is_masked, tok.mask_token_id)


# ------------------------------------------------------------------ the Enhanced Mask Decoder
def official_emd_logits(gen, input_ids, input_mask, lm_labels):
    """`MaskedLanguageModel.forward` + `EnhancedMaskDecoder.emd_context_layer` (position_biased_input false), transcribed:
    the layer outputs (not the embeddings), z from position ids 0..n-1 of each row's tokens and 0 at padding (as
    `RTDTask.example_to_feature` pads them), the 4-d byte mask, relative positions left to the attention (None), the
    last layer twice, then the masked rows flattened and `BertLMPredictionHead` with the word embedding matrix."""
    out = gen.deberta(input_ids, attention_mask=input_mask, output_hidden_states=True)
    encoder_layers = list(out.hidden_states[1:])                       # the official list holds each layer's output only
    n = input_mask.sum(-1, keepdim=True)
    position_ids = torch.arange(input_ids.shape[1]).expand_as(input_ids) * (torch.arange(input_ids.shape[1]) < n)
    z_states = gen.deberta.embeddings.position_embeddings(position_ids)
    extended = input_mask.unsqueeze(1).unsqueeze(2).byte()
    attention_mask = extended * extended.squeeze(-2).unsqueeze(-1)
    hidden_states = encoder_layers[-2]
    layers = [gen.deberta.encoder.layer[-1] for _ in range(2)]
    z_states = z_states + hidden_states
    query_states = z_states
    rel_embeddings = gen.deberta.encoder.get_rel_embedding()
    for layer in layers:
        query_states = layer(hidden_states, attention_mask, query_states=query_states, relative_pos=None,
                             rel_embeddings=rel_embeddings)[0]
    mask_index = (lm_labels.view(-1) > 0).nonzero().view(-1)
    ctx = query_states.view(-1, query_states.size(-1)).index_select(0, mask_index)
    head = gen.lm_predictions.lm_head                                  # BertLMPredictionHead: dense, act, LayerNorm
    h = F.layer_norm(F.gelu(head.dense(ctx)), head.LayerNorm.normalized_shape, head.LayerNorm.weight, head.LayerNorm.bias,
                     head.LayerNorm.eps)
    return h @ gen.deberta.embeddings.word_embeddings.weight.t() + head.bias


def test_emd_forward_is_the_official_one_on_the_same_weights_and_inputs():
    tok, _ = word_level_data()
    torch.manual_seed(0)
    cfg = deberta_cfg()
    model = build_rtd_model(cfg, tok).eval()
    gen = model.generator
    assert isinstance(gen, DebertaV2ForMaskedLMWithEMD) and gen.deberta.encoder.layer.__len__() == 2
    ids, attn, tt, is_masked, masked = batch(tok)
    labels = torch.where(is_masked, ids, 0)                           # the official lm_labels: the original id, 0 elsewhere
    with torch.no_grad():
        want = official_emd_logits(gen, masked, attn, labels)
        out = model(masked, attn, tt, is_masked, rng=torch.Generator().manual_seed(0), slots=8)
        got = out.mlm_logits[out.slot_valid]                             # row-major order of the masked positions, as index_select
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
        # the HF-style forward of the generator class computes it too
        torch.testing.assert_close(gen(masked, attention_mask=attn).logits[is_masked], want, rtol=1e-5, atol=1e-5)
        # and it is not the plain head on the last layer (what HF's DebertaV2ForMaskedLM computes)
        plain = mlm_head_logits(gen, gen.deberta(masked, attention_mask=attn).last_hidden_state)[is_masked]
        assert (plain - want).abs().max() > 1e-3                    # 100 x the tolerance above
        # z matters: another position table, other logits
        gen.deberta.embeddings.position_embeddings.weight.mul_(2)
        assert (model(masked, attn, tt, is_masked, rng=torch.Generator().manual_seed(0), slots=8).mlm_logits[out.slot_valid] - want).abs().max() > 1e-3


def test_emd_adds_only_the_position_table_and_trains_it_with_the_mlm_loss():
    tok, _ = word_level_data()
    cfg = deberta_cfg()
    with_emd, without = build_rtd_model(cfg, tok), build_rtd_model(deberta_cfg(emd=False), tok)
    extra = {n for n, _ in with_emd.named_parameters()} - {n for n, _ in without.named_parameters()}
    assert extra == {'generator.deberta.embeddings.position_embeddings.weight'}
    assert type(without.generator) is DebertaV2ForMaskedLM
    ids, attn, tt, is_masked, masked = batch(tok)
    out = with_emd(masked, attn, tt, is_masked, slots=8)
    F.cross_entropy(out.mlm_logits[out.slot_valid], ids[is_masked]).backward()
    table = with_emd.generator.deberta.embeddings.position_embeddings.weight
    assert table.grad is not None and table.grad[:ids.shape[1]].abs().sum() > 0 and table.grad[ids.shape[1]:].abs().sum() == 0


def test_emd_config_errors_name_the_fix():
    with pytest.raises(ValueError, match='--emd false'): pretrain_config('electra', 'tiny', emd=True)
    with pytest.raises(ValueError, match='--embedding_size 32'): deberta_cfg(embedding_size=16)


def test_exported_generator_round_trips_with_emd_and_its_card_says_hf_runs_it_without(tmp_path):
    tok, _ = word_level_data()
    torch.manual_seed(0)
    cfg = deberta_cfg()
    model = build_rtd_model(cfg, tok).eval()
    with torch.no_grad(): model.generator.deberta.embeddings.position_embeddings.weight.normal_()   # not the init
    save_generator(model, tok, tmp_path/'gen', cfg)
    save_discriminator(model, tok, tmp_path/'disc', cfg)
    card = (tmp_path/'gen'/'README.md').read_text()
    import json
    from electra_gdes.glue_model import check_finetune_checkpoint
    assert json.loads((tmp_path/'gen'/'config.json').read_text())['architectures'] == ['DebertaV2ForMaskedLM']
    with pytest.raises(ValueError, match='is a generator'): check_finetune_checkpoint(tmp_path/'gen')   # GLUE refuses it
    assert 'Enhanced Mask Decoder' in card and 'without** EMD' in card and 'DebertaV2ForMaskedLMWithEMD' in card
    ids, attn, tt, is_masked, masked = batch(tok)
    with torch.no_grad():
        want = model.generator(masked, attention_mask=attn).logits
        back = DebertaV2ForMaskedLMWithEMD.from_pretrained(tmp_path/'gen').eval()
        torch.testing.assert_close(back(masked, attention_mask=attn).logits, want)
        hf = DebertaV2ForMaskedLM.from_pretrained(tmp_path/'gen').eval()   # HF's class: loads, without table and EMD
        assert hf.deberta.embeddings.position_embeddings is None
        assert (hf(masked, attention_mask=attn).logits - want).abs().max() > 1e-3
        # continued pretraining: the pair loads into an RTDModel with the trained table
        again = load_rtd_model(cfg, tmp_path/'gen', tmp_path/'disc', tok).eval()
        torch.testing.assert_close(again.generator.deberta.embeddings.position_embeddings.weight,
                                   model.generator.deberta.embeddings.position_embeddings.weight)
        g = torch.Generator().manual_seed(1)
        a = model(masked, attn, tt, is_masked, rng=g.manual_seed(1), slots=8)
        b = again(masked, attn, tt, is_masked, rng=g.manual_seed(1), slots=8)
        torch.testing.assert_close(b.mlm_logits, a.mlm_logits)
        torch.testing.assert_close(b.disc_logits, a.disc_logits, rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------ decoupled training
from fastai.callback.core import Callback
from torch import nn
from electra_gdes.train import pretrain_learner, fit_steps, decoupled_param_groups


class Capture(Callback):
    "The batch of the first training step as `RTDCallback` wired it (masked ids, mask, samples' uniforms; targets)."
    order = 0
    def before_batch(self):
        if self.training and self.batch is None: self.batch = self.learn.xb, self.learn.yb
    def __init__(self): self.batch = None


def no_dropout(model):
    for mod in model.modules():
        if isinstance(mod, nn.Dropout): mod.p = 0.0
    return model


def official_adam_step(named, lr, cfg):
    """One step of the official trainer's optimizer on `named` (its own parameters) from zero state: the global-norm clip
    of these gradients alone, then Adam without bias correction with decoupled decay, no decay on biases and LayerNorms."""
    params = [(n, p) for n, p in named if p.grad is not None]
    total = torch.sqrt(sum((p.grad.double() ** 2).sum() for _, p in params))
    coef = min(1.0, cfg.clip_norm / (float(total) + 1e-6))
    with torch.no_grad():
        for n, p in params:
            g = p.grad * coef
            m, v = (1 - cfg.adam_beta1) * g, (1 - cfg.adam_beta2) * g * g
            wd = 0.0 if ('bias' in n or 'LayerNorm' in n) else cfg.weight_decay
            p.mul_(1 - lr * wd).sub_(lr * m / (v.sqrt() + cfg.adam_eps))
    return float(total)


def official_decoupled_step(ref, xb, yb, cfg):
    """`RTDTask.get_decoupled_loss_fn` with `DistributedTrainer._train_step`, transcribed: the generator trainer's
    forward (`make_electra_data`: MLM loss over the masked positions, the samples), backward of `mlm.mean()` and its
    step; then `post_g_loss_fn` hands the new data to the discriminator trainer: forward after the generator's step,
    backward of `rtd_lambda * rtd.mean()` (BCE over the non-pad tokens), its step. Each trainer steps its own model's
    parameters; the discriminator's gradient of a table it shares with the generator is never stepped by it."""
    masked, attn, tt, is_masked, noise = xb
    ids = yb[0]
    gen_names = {id(p) for p in ref.generator.parameters()}
    out = ref.generate(masked, attn, tt, is_masked, noise)
    mlm = F.cross_entropy(out.mlm_logits[out.slot_valid], ids.gather(1, out.masked_positions)[out.slot_valid])
    mlm.backward()
    g_norm = official_adam_step(list(ref.generator.named_parameters()), cfg.lr, cfg)
    ref.zero_grad(set_to_none=True)
    logits = ref.discriminate(out.disc_input, attn, tt)
    real = attn.bool()
    rtd = F.binary_cross_entropy_with_logits(logits[real].float(), (out.disc_input != ids)[real].float())
    (cfg.disc_weight * rtd).backward()
    disc_own = [(n, p) for n, p in ref.discriminator.named_parameters() if id(p) not in gen_names]
    d_norm = official_adam_step(disc_own, cfg.disc_lr or cfg.lr, cfg)
    ref.zero_grad(set_to_none=True)
    return g_norm, d_norm


@pytest.mark.parametrize('sharing,grad_accum', [('gdes', 1), ('gdes', 2), ('es', 1), ('nes', 1)])
def test_one_decoupled_step_is_two_separately_stepped_optimizers(tmp_path, sharing, grad_accum):
    tok, ds = word_level_data()
    # no warmup (lr at step 0 is the peak), a discriminator lr of its own, a clip that both norms exceed
    cfg = deberta_cfg(tmp_path, steps=1, warmup_steps=0, lr=1e-3, disc_lr=3e-3, clip_norm=0.05, embedding_sharing=sharing,
                      grad_accum=grad_accum)
    torch.manual_seed(0)
    model = no_dropout(build_rtd_model(cfg, tok))
    start = copy.deepcopy(model)
    cap = Capture()
    learn = pretrain_learner(cfg, ds, tok, model=model, cbs=[cap], device=torch.device('cpu'))
    fit_steps(learn)
    assert [len(g) for g in learn.opt.param_lists] == [len(g) for g in decoupled_param_groups(model)]
    ref = copy.deepcopy(start)
    g_norm, d_norm = official_decoupled_step(ref, *cap.batch, cfg)
    assert g_norm > cfg.clip_norm and d_norm > cfg.clip_norm           # both clips act, each on its own norm
    got, want = dict(model.named_parameters()), dict(ref.named_parameters())
    assert got.keys() == want.keys()
    moved = 0
    for name, p in want.items():
        torch.testing.assert_close(got[name], p, rtol=1e-5, atol=1e-5, msg=name)
        moved += not torch.equal(p, dict(start.named_parameters())[name])
    assert moved > 0.9 * len(want)                                     # the step did change (nearly) every weight
    # the joint step (one loss, one clip over both models) is another step: the comparison above can fail
    joint = no_dropout(copy.deepcopy(start))
    learn2 = pretrain_learner(deberta_cfg(tmp_path/'joint', **{**{k: getattr(cfg, k) for k in (
        'steps', 'warmup_steps', 'lr', 'clip_norm', 'embedding_sharing', 'grad_accum')}, 'decoupled_training': False}),
        ds, tok, model=joint, device=torch.device('cpu'))
    fit_steps(learn2)
    assert max((dict(joint.named_parameters())[n] - p).abs().max().item() for n, p in want.items()) > 1e-4


def weights(model): return {k: v.detach().clone() for k, v in model.state_dict().items()}


def run(cfg, ds, tok, cbs=(), model=None, resume_from=False):
    from electra_gdes.checkpoint import resume_from_latest
    torch.manual_seed(0)
    model = no_dropout(model if model is not None else build_rtd_model(cfg, tok))
    learn = pretrain_learner(cfg, ds, tok, model=model, cbs=list(cbs), device=torch.device('cpu'))
    if resume_from: resume_from_latest(learn)
    fit_steps(learn)
    return learn


def test_decoupled_grad_accum_4_micro_batches_equal_one_step(tmp_path):
    from electra_gdes.logs import read_log
    tok, ds = word_level_data()
    runs = {n: run(deberta_cfg(tmp_path, run_name=f'a{n}', steps=3, batch_size=16, grad_accum=n, log_every=1), ds, tok)
            for n in (1, 4)}
    la, lb = (read_log(tmp_path/f'a{n}'/'log.csv') for n in (1, 4))
    for k in ('loss', 'mlm_loss', 'disc_loss', 'gen_acc', 'disc_acc', 'lr'):
        assert [r[k] for r in la] == pytest.approx([r[k] for r in lb], rel=1e-4, abs=1e-6), k
    wa, wb = weights(runs[1].model), weights(runs[4].model)
    for k in wa: torch.testing.assert_close(wa[k], wb[k], rtol=1e-4, atol=1e-5, msg=k)


def test_decoupled_checkpoint_holds_both_optimizers_and_resume_is_exact(tmp_path):
    from fastai.callback.core import CancelFitException
    from electra_gdes.logs import read_log
    from electra_gdes.checkpoint import read_checkpoint, latest_checkpoint
    tok, ds = word_level_data()
    cfg = deberta_cfg(tmp_path, run_name='full', steps=6, log_every=1, checkpoint_fractions=(0.5, 1.0), disc_lr=4e-3)
    full = run(cfg, ds, tok)
    class StopAt3(Callback):
        order = 95   # after the checkpoint of step 3 is written
        def after_batch(self):
            if self.training and self.learn.start_step + self.train_iter == 3: raise CancelFitException()
    cut_cfg = deberta_cfg(tmp_path, run_name='cut', steps=6, log_every=1, checkpoint_fractions=(0.5, 1.0), disc_lr=4e-3)
    run(cut_cfg, ds, tok, cbs=[StopAt3()])
    state = read_checkpoint(latest_checkpoint(cut_cfg.run_dir))
    assert state['step'] == 3
    n_disc, n_gen = (sum(len(g) for g in groups) for groups in (decoupled_param_groups(full.model)[:2],
                                                                 decoupled_param_groups(full.model)[2:]))
    assert len(state['opt']['hypers']) == 4 and len(state['opt']['state']) == n_disc + n_gen
    assert all('grad_avg' in s and s['grad_avg'].abs().sum() > 0 for s in state['opt']['state'])   # both models' Adam moments
    assert [h['lr'] for h in state['opt']['hypers']][::2] == pytest.approx([4e-3 * (1 - 2 / 6), 2e-3 * (1 - 2 / 6)])
    again = run(cut_cfg, ds, tok, resume_from=True)
    a, b = read_log(cfg.run_dir/'log.csv'), read_log(cut_cfg.run_dir/'log.csv')
    assert [r['step'] for r in b] == list(range(1, 7))
    for k in ('loss', 'mlm_loss', 'disc_loss', 'lr', 'gen_acc', 'disc_acc'): assert [r[k] for r in a] == [r[k] for r in b], k
    wa, wb = weights(full.model), weights(again.model)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


class InfGrad(Callback):
    "An infinite gradient in one model just before its step, at the given global steps (before NonFiniteCallback looks)."
    order = 5
    def __init__(self, gen_steps=(), disc_steps=()): self.gen_steps, self.disc_steps, self.snap = set(gen_steps), set(disc_steps), {}
    def before_batch(self):
        m = self.learn.model
        self.snap[self.learn.start_step + self.train_iter] = ([p.detach().clone() for p in m.generator.parameters()],
                                                             [p.detach().clone() for n, p in m.discriminator.named_parameters() if 'source' not in n])
    def before_step(self):
        step, gen_phase = self.learn.start_step + self.train_iter, getattr(self.learn, 'more_steps_in_batch', False)
        if step in (self.gen_steps if gen_phase else self.disc_steps):
            model = self.learn.model.generator if gen_phase else self.learn.model.discriminator
            next(p for p in model.parameters() if p.grad is not None).grad.view(-1)[0] = float('inf')


def test_decoupled_nonfinite_skips_each_step_on_its_own_and_counts_the_batch_once(tmp_path):
    from electra_gdes.long_runs import NonFiniteCallback, NonFiniteTrainingError
    tok, ds = word_level_data()
    bad = InfGrad(gen_steps={2, 4}, disc_steps={3, 4})
    learn = run(deberta_cfg(tmp_path, steps=7, log_every=1), ds, tok, cbs=[bad, NonFiniteCallback(10)])
    assert (learn.non_finite.n_skipped, learn.non_finite.in_a_row) == (3, 0)   # batches 2, 3, 4 (both models at 4): once each
    same = lambda a, b: all(torch.equal(x, y) for x, y in zip(a, b))
    gen_moved = {s: not same(bad.snap[s][0], bad.snap[s + 1][0]) for s in range(1, 6)}
    disc_moved = {s: not same(bad.snap[s][1], bad.snap[s + 1][1]) for s in range(1, 6)}
    assert gen_moved == {1: True, 2: False, 3: True, 4: False, 5: True}
    assert disc_moved == {1: True, 2: True, 3: False, 4: False, 5: True}
    # a streak is of batches: the generator failing at 2, the discriminator at 3, both at 4 make 3 in a row
    with pytest.raises(NonFiniteTrainingError, match=r'3 non-finite steps in a row \(the last at step 4'):
        run(deberta_cfg(tmp_path/'b', steps=7, log_every=1), ds, tok,
            cbs=[InfGrad(gen_steps={2, 4}, disc_steps={3, 4}), NonFiniteCallback(3)])


def test_decoupled_under_ddp_matches_one_process(tmp_path, monkeypatch):
    "A one-process gloo group with `DDPCallback`: each model's backward leaves the other's parameters unused."
    import os
    import torch.distributed as dist
    from electra_gdes.distributed import DDPCallback, RTDDataParallel
    tok, ds = word_level_data()
    plain = run(deberta_cfg(tmp_path, run_name='plain', steps=3, grad_accum=2), ds, tok)
    monkeypatch.setenv('MASTER_ADDR', '127.0.0.1'); monkeypatch.setenv('MASTER_PORT', str(28500 + os.getpid() % 1000))
    dist.init_process_group('gloo', rank=0, world_size=1)
    try:
        seen = []
        class Peek(Callback):
            def before_batch(self): seen.append(isinstance(self.learn.model, RTDDataParallel) and self.learn.model.find_unused_parameters)
        ddp = run(deberta_cfg(tmp_path, run_name='ddp', steps=3, grad_accum=2), ds, tok, cbs=[DDPCallback(), Peek()])
    finally: dist.destroy_process_group()
    assert seen and all(seen)
    wa, wb = weights(plain.model), weights(ddp.model)
    for k in wa: torch.testing.assert_close(wa[k], wb[k], rtol=1e-5, atol=1e-6, msg=k)


DDP_WORKER = '''
import sys, torch
sys.path.insert(0, sys.argv[1])
from test_deberta_official import deberta_cfg, no_dropout, weights
from helpers import word_level_data
from electra_gdes.distributed import distributed_pretrain_learner, cleanup_distributed, is_rank0
from electra_gdes.model import build_rtd_model
from electra_gdes.train import fit_steps
tok, ds = word_level_data()
cfg = deberta_cfg(sys.argv[2], run_name='ddp', steps=3, batch_size=16, grad_accum=2, log_every=1)
torch.manual_seed(0)
learn = distributed_pretrain_learner(cfg, ds, tok, model=no_dropout(build_rtd_model(cfg, tok)), backend='gloo')
fit_steps(learn)
if is_rank0(): torch.save(weights(learn.model), sys.argv[2] + '/ddp.pt')
cleanup_distributed()
'''


def test_decoupled_on_two_processes_equals_one_process(tmp_path):
    """torchrun, two gloo processes, two micro-batches each: each model's gradients are all-reduced with its own step,
    and the run ends with the weights of one process on the whole batch."""
    import os, subprocess, sys
    from pathlib import Path
    from electra_gdes.logs import read_log
    tok, ds = word_level_data()
    single = run(deberta_cfg(tmp_path, run_name='single', steps=3, batch_size=16, log_every=1), ds, tok)
    script = tmp_path/'worker.py'; script.write_text(DDP_WORKER)
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'HF_HUB_OFFLINE': '1', 'HF_DATASETS_OFFLINE': '1', 'TOKENIZERS_PARALLELISM': 'false'}
    p = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2', str(script),
                        str(Path(__file__).parent), str(tmp_path)], env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    la, lb = read_log(tmp_path/'single'/'log.csv'), read_log(tmp_path/'ddp'/'log.csv')
    for k in ('loss', 'mlm_loss', 'disc_loss', 'gen_acc', 'disc_acc', 'lr'):
        assert [r[k] for r in la] == pytest.approx([r[k] for r in lb], rel=1e-4, abs=1e-6), k
    wa, wb = weights(single.model), torch.load(tmp_path/'ddp.pt')
    for k in wa: torch.testing.assert_close(wa[k], wb[k], rtol=1e-4, atol=1e-5, msg=k)
