"""The published recipe, pinned: every number here is a literal from REFERENCE.md (the ELECTRA and DeBERTaV3 papers and their
official code), never read back from the library. Where DeBERTaV3-small is not published, the library's documented choice
is pinned as that choice (marked `not published`). Run `python scripts/mutate_recipe.py` to see that each recipe constant
of the library is guarded by a test here."""
import math, random
import numpy as np
import pytest
import torch
from torch import nn

from electra_gdes.config import FinetuneConfig, pretrain_config
from electra_gdes.model import discriminator_config, generator_config

BERT_VOCAB, SPM_VOCAB = 30522, 128100


class FakeTokenizer:
    "All that the model configs read from a tokenizer: its length and pad id."
    pad_token_id = 0
    def __init__(self, n): self.n = n
    def __len__(self): return self.n


# ---------------------------------------------------------------- pretraining presets
# (backbone, size): hidden, layers, heads, FFN, embedding size, max_length, lr, batch, steps, warmup, mask rate
PUBLISHED = {
    ('electra', 'small'):  (256, 12, 4, 1024, 128, 128, 5e-4, 128, 1_000_000, 10_000, 0.15),
    ('electra', 'base'):   (768, 12, 12, 3072, 768, 512, 2e-4, 256, 766_000, 10_000, 0.15),
    ('electra', 'large'):  (1024, 24, 16, 4096, 1024, 512, 2e-4, 2048, 400_000, 10_000, 0.25),
    # xsmall: lr 3e-4, batch 64 published; its length, warmup and steps are the base/large ones (1M steps, warmup 10k,
    # length 512), which the DeBERTaV3 paper uses for every size. Heads 6 / FFN 1536: the released xsmall config.
    ('deberta', 'xsmall'): (384, 12, 6, 1536, 384, 512, 3e-4, 64, 1_000_000, 10_000, 0.15),
    # small: 6 layers of 768 published; lr 1e-4 / batch 256 / 1M steps are not published for small: the library's
    # documented choice, the base recipe
    ('deberta', 'small'):  (768, 6, 12, 3072, 768, 512, 1e-4, 256, 1_000_000, 10_000, 0.15),
    ('deberta', 'base'):   (768, 12, 12, 3072, 768, 512, 1e-4, 256, 1_000_000, 10_000, 0.15),
    ('deberta', 'large'):  (1024, 24, 16, 4096, 1024, 512, 1e-4, 256, 1_000_000, 10_000, 0.15),
}
# mask_unk: the official ELECTRA candidates exclude only [CLS] [SEP] [MASK] and padding, so [UNK] may be masked; the
# DeBERTa presets never mask [UNK] (the library's documented choice)
# ELECTRA's official code trains the sum mlm + 50 disc with one optimizer and has no Enhanced Mask Decoder
ELECTRA_RTD = dict(mask_style='electra', sampling='gumbel', temperature=1.0, disc_weight=50.0, schedule='electra',
                   example_builder='electra', tokenizer='bert-uncased', vocab_size=BERT_VOCAB, mask_unk=True,
                   emd=False, decoupled_training=False)
# DeBERTaV3 (rtd.sh, rtd_*.json, rtd_task.py): `--decoupled_training True` for every size, no
# `--discriminator_learning_rate` (default -1: the same lr), `rtd_lambda` 10, the generator a MaskedLanguageModel (EMD)
DEBERTA_RTD = dict(mask_style='deberta', sampling='multinomial', temperature=1.0, disc_weight=10.0, schedule='deberta',
                   example_builder='deberta', vocab_size=SPM_VOCAB, mask_unk=False, emd=True, decoupled_training=True,
                   disc_lr=None)
# generator: ELECTRA divides hidden, heads and FFN by 4 (base: by 3), same depth; DeBERTaV3: same width, half the layers
GENERATOR = {('electra', 'small'): (64, 12, 1, 256), ('electra', 'base'): (256, 12, 4, 1024),
             ('electra', 'large'): (256, 24, 4, 1024), ('deberta', 'xsmall'): (384, 6, 6, 1536),
             ('deberta', 'small'): (768, 3, 12, 3072), ('deberta', 'base'): (768, 6, 12, 3072),
             ('deberta', 'large'): (1024, 12, 16, 4096)}


@pytest.mark.parametrize('backbone,size', list(PUBLISHED))
def test_preset_shape_and_schedule(backbone, size):
    h, L, heads, ffn, emb, max_len, lr, bs, steps, warmup, p = PUBLISHED[backbone, size]
    cfg = pretrain_config(backbone, size)
    got = (cfg.hidden_size, cfg.num_layers, cfg.num_heads, cfg.intermediate_size, cfg.embedding_size, cfg.max_length,
           cfg.lr, cfg.batch_size, cfg.steps, cfg.warmup_steps, cfg.mask_prob)
    assert got == (h, L, heads, ffn, emb, max_len, lr, bs, steps, warmup, p)
    for k, v in (ELECTRA_RTD if backbone == 'electra' else DEBERTA_RTD).items(): assert getattr(cfg, k) == v, k
    # ELECTRA's Adam without bias correction, decoupled decay, global-norm clipping: the same for every preset
    assert (cfg.adam_beta1, cfg.adam_beta2, cfg.adam_eps, cfg.weight_decay, cfg.clip_norm) == (0.9, 0.999, 1e-6, 0.01, 1.0)
    assert cfg.position_buckets == 256


@pytest.mark.parametrize('backbone,size', list(PUBLISHED))
def test_generator_and_discriminator_configs_as_built(backbone, size):
    "The HF configs `generator_config` / `discriminator_config` actually build, not the ratios."
    cfg = pretrain_config(backbone, size)
    tok = FakeTokenizer(BERT_VOCAB if backbone == 'electra' else SPM_VOCAB)
    h, L, heads, ffn, emb = PUBLISHED[backbone, size][:5]
    d, g = discriminator_config(cfg, tok), generator_config(cfg, tok)
    shape = lambda c: (c.hidden_size, c.num_hidden_layers, c.num_attention_heads, c.intermediate_size)
    assert shape(d) == (h, L, heads, ffn) and d.embedding_size == emb
    assert shape(g) == GENERATOR[backbone, size]
    assert g.embedding_size == emb and g.vocab_size == d.vocab_size == len(tok)   # shareable tables
    if backbone == 'deberta':
        assert d.relative_attention and d.position_buckets == 256 and not d.position_biased_input
        assert d.pos_att_type == ['p2c', 'c2p'] and d.type_vocab_size == 0


def test_continued_training_recipe():
    """DeBERTaV3's continued training from released weights (rtd.sh, deberta-v3-{xsmall,small}-continue): lr 5e-5,
    batch 256, 100k steps, warmup 10k, unless given."""
    for backbone, size in PUBLISHED:
        cfg = pretrain_config(backbone, size, init_generator='gen', init_discriminator='disc')
        assert (cfg.lr, cfg.steps, cfg.batch_size, cfg.warmup_steps) == (5e-5, 100_000, 256, 10_000)
    assert pretrain_config('electra', 'small', init_generator='g', init_discriminator='d', lr=1e-4).lr == 1e-4


def test_deberta_sampling_is_the_official_multinomial():
    "rtd_task.py `topk_sampling`: `torch.multinomial(softmax(logits / temp), 1)`, temp 1, at the masked positions."
    from electra_gdes.rtd import SAMPLER_FUNCS
    cfg = pretrain_config('deberta', 'base')
    assert cfg.temperature == 1.0
    logits = torch.randn(6, 5, 40, generator=torch.Generator().manual_seed(0)) * 3
    for temp in (1.0, 0.5):
        got = SAMPLER_FUNCS[cfg.sampling](logits, temp, torch.Generator().manual_seed(7))
        want = torch.multinomial(torch.softmax(logits.view(-1, 40) / temp, dim=-1), 1, generator=torch.Generator().manual_seed(7))
        assert torch.equal(got, want.view(6, 5))


def test_no_weight_decay_on_layernorm_and_biases():
    from transformers import ElectraConfig, ElectraForPreTraining
    from electra_gdes.optim import no_decay_param_groups
    model = ElectraForPreTraining(ElectraConfig(vocab_size=20, embedding_size=8, hidden_size=8, num_hidden_layers=1,
                                                num_attention_heads=2, intermediate_size=16))
    decay, no_decay = no_decay_param_groups(model)
    name = {id(p): n for n, p in model.named_parameters()}
    assert all('LayerNorm' in name[id(p)] or name[id(p)].endswith('bias') for p in no_decay)
    assert not any('LayerNorm' in name[id(p)] or name[id(p)].endswith('bias') for p in decay)
    assert len(decay) + len(no_decay) == len(name)


# ---------------------------------------------------------------- masking
def _tok():
    from transformers import BertTokenizerFast
    return BertTokenizerFast(vocab={w: i for i, w in enumerate(['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'] +
                                                               [f'w{i}' for i in range(995)])})


def test_mask_split_constants():
    from electra_gdes.rtd import MASK_SPLITS      # (to [MASK], to a random token); the rest keep the original
    assert MASK_SPLITS == {'electra': (0.85, 0.0), 'deberta': (1.0, 0.0), 'bert': (0.8, 0.1)}


@pytest.mark.parametrize('style,split', [('electra', (0.85, 0.15, 0.0)), ('deberta', (1.0, 0.0, 0.0)),
                                         ('bert', (0.8, 0.1, 0.1))])
def test_mask_split_as_sampled(style, split):
    "What `mask_tokens` does to the masked positions: the share to [MASK], kept, and random, against the published split."
    from electra_gdes.rtd import mask_tokens
    tok = _tok()
    g = torch.Generator().manual_seed(0)
    ids = torch.cat([torch.full((4000, 1), 2), torch.randint(5, 1000, (4000, 126), generator=g), torch.full((4000, 1), 3)], 1)
    attn = torch.ones_like(ids)
    masked, is_masked = mask_tokens(ids, attn, tok.all_special_ids, tok.mask_token_id, len(tok), 0.15, style, g, max_length=128)
    n = is_masked.sum().item()
    assert n == 4000 * 19            # round(0.15*128) under the cap int(0.155*128) = 19 (DeBERTa: 21 windows, the first 19)
    m, o = masked[is_masked], ids[is_masked]
    to_mask = (m == tok.mask_token_id).float().mean().item()
    kept = (m == o).float().mean().item()
    rand = 1 - to_mask - kept
    tol = 5 * math.sqrt(0.25 / n)
    assert abs(to_mask - split[0]) < tol and abs(kept - split[1]) < tol + 1e-3 and abs(rand - split[2]) < tol, (to_mask, kept, rand)


def test_masked_count_literals():
    from electra_gdes.rtd import masked_count
    t = torch.tensor
    assert masked_count(t([128]), t([126]), 0.15, 128).tolist() == [19]     # round(19.2), cap int(0.155*128) = 19
    assert masked_count(t([128]), t([126]), 0.25, 128).tolist() == [32]     # large: 25%, cap int(0.255*128) = 32
    assert masked_count(t([512]), t([510]), 0.15, 512).tolist() == [77]     # round(76.8) under the cap 79
    assert masked_count(t([512]), t([510]), 0.25, 512).tolist() == [128]    # under the cap int(0.255*512) = 130
    assert masked_count(t([600]), t([598]), 0.15, 512).tolist() == [79]


def test_deberta_window_is_six_tokens():
    from electra_gdes.rtd import mask_tokens
    tok = _tok()
    ids = torch.cat([torch.tensor([[2]]), torch.arange(10, 70)[None], torch.tensor([[3]])], 1).repeat(50, 1)
    _, is_masked = mask_tokens(ids, torch.ones_like(ids), tok.all_special_ids, tok.mask_token_id, len(tok), 0.15, 'deberta',
                               torch.Generator().manual_seed(0), max_length=128)
    # round(0.15 * 62) = 9 tokens: one in each of the first 9 windows of 6 candidates, none in the 10th
    assert is_masked[:, 1:-1].view(50, 10, 6).sum(-1).tolist() == [[1] * 9 + [0]] * 50


# ---------------------------------------------------------------- generator sampling
def test_gumbel_noise_formula_with_both_epsilons():
    "g = -log(-log(U + 1e-9) + 1e-9): finite at U = 0 and U = 1, and equal to the float64 formula near both ends."
    from electra_gdes.rtd import gumbel_noise
    u = torch.tensor([0.0, 1e-12, 1e-7, 0.5, 1 - 2**-24, 1.0])
    eps = np.float32(1e-9)
    ref = -np.log(-np.log(u.numpy() + eps) + eps)      # numpy in float32: the same roundings (U + 1e-9 = U near 1)
    g = gumbel_noise(u.clone())
    assert g.dtype == torch.float32 and torch.isfinite(g).all()
    np.testing.assert_allclose(g.numpy(), ref, rtol=1e-6)
    assert g[4].item() == pytest.approx(-math.log(2**-24 + 1e-9), rel=1e-5)    # 16.619: the outer 1e-9 at U near 1
    assert g[0].item() == pytest.approx(-math.log(-math.log(1e-9)), rel=1e-6)   # -3.0312..., not -inf
    assert g[-1].item() == pytest.approx(-math.log(1e-9), rel=1e-6)             # 20.72..., not +inf


def test_gumbel_sample_is_fp32_arithmetic_on_low_precision_logits():
    """bf16 / fp16 logits are sampled with fp32 arithmetic: the argmax equals the float64 formula on every row, where
    doing the division by the temperature (or the noise) in bf16 changes a clear share of the rows."""
    from electra_gdes.rtd import gumbel_sample
    g = torch.Generator().manual_seed(0)
    T = 0.7
    for dtype in (torch.bfloat16, torch.float16):
        logits = (torch.rand(2000, 50, generator=g) * 60 - 30).to(dtype)
        u = torch.rand(logits.shape, generator=torch.Generator().manual_seed(1)).double()
        ref = (logits.double() / T - torch.log(-torch.log(u + 1e-9) + 1e-9)).argmax(-1)
        got = gumbel_sample(logits, T, torch.Generator().manual_seed(1))
        assert (got != ref).sum().item() == 0, dtype
        low = (logits / T + (-torch.log(-torch.log(u + 1e-9) + 1e-9)).to(dtype)).argmax(-1)   # the same in low precision
        assert (low != ref).sum().item() >= 5                                                # this test can tell


# ---------------------------------------------------------------- optimiser and schedules
def test_adam_without_bias_correction_first_steps():
    "Two steps by hand from zero moments: m = 0.9 m + 0.1 g, v = 0.999 v + 0.001 g^2, w <- w (1 - lr wd) - lr m / (sqrt(v) + 1e-6)."
    from electra_gdes.optim import AdamNoBiasCorrection, adam_no_bias_correction
    hypers = AdamNoBiasCorrection([nn.Parameter(torch.ones(1))], lr=0.1).hypers[0]
    assert (hypers['mom'], hypers['sqr_mom'], hypers['eps'], hypers['wd']) == (0.9, 0.999, 1e-6, 0.01)
    w = nn.Parameter(torch.tensor([1.0, -2.0], dtype=torch.float64))
    opt = adam_no_bias_correction([w], lr=0.1)             # the defaults are ELECTRA's: 0.9 / 0.999 / 1e-6, wd 0.01
    want, m, v = np.array([1.0, -2.0]), 0.0, 0.0
    for g in (np.array([2.0, 0.5]), np.array([-1.0, 3.0])):
        w.grad = torch.tensor(g)
        opt.step()
        m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g * g
        want = want * (1 - 0.1 * 0.01) - 0.1 * m / (np.sqrt(v) + 1e-6)
        np.testing.assert_allclose(w.detach().numpy(), want, rtol=1e-10)


def test_pretraining_optimiser_as_built():
    from electra_gdes.optim import pretrain_opt_func
    for backbone, size in PUBLISHED:
        opt = pretrain_opt_func(pretrain_config(backbone, size))([[nn.Parameter(torch.ones(2))], [nn.Parameter(torch.ones(2))]], lr=1e-3)
        assert [(h['mom'], h['sqr_mom'], h['eps'], h['wd']) for h in opt.hypers] == [(0.9, 0.999, 1e-6, 0.01), (0.9, 0.999, 1e-6, 0.0)]


@pytest.mark.parametrize('step,want', [(0, 0.0), (500, 0.5 * 0.995), (1000, 0.99), (5000, 0.95 * 1), (50_000, 0.5), (100_000, 0.0)])
def test_electra_schedule_at_points(step, want):
    "lr(t) = lr_max (1 - t/T) min(1, t/W): warmup and decay at the same time (T = 100k, W = 1k)."
    from electra_gdes.optim import electra_lr
    assert electra_lr(step, 100_000, 1000) == pytest.approx(want, abs=1e-12)


@pytest.mark.parametrize('step,want', [(0, 0.0), (500, 0.5), (999, 0.999), (1000, 0.99), (50_000, 0.5), (100_000, 0.0)])
def test_deberta_schedule_at_points(step, want):
    "t/W during warmup, then 1 - t/T (T = 100k, W = 1k)."
    from electra_gdes.optim import deberta_lr
    assert deberta_lr(step, 100_000, 1000) == pytest.approx(want, abs=1e-12)


def test_preset_learning_rates_along_the_run():
    from electra_gdes.optim import lr_at_step
    assert lr_at_step(pretrain_config('electra', 'small'), 5000) == pytest.approx(5e-4 * 0.995 * 0.5)
    assert lr_at_step(pretrain_config('electra', 'base'), 383_000) == pytest.approx(2e-4 * 0.5)
    assert lr_at_step(pretrain_config('deberta', 'base'), 5000) == pytest.approx(1e-4 * 0.5)
    assert lr_at_step(pretrain_config('deberta', 'xsmall'), 500_000) == pytest.approx(3e-4 * 0.5)


# ---------------------------------------------------------------- ELECTRA example builder
def test_electra_builder_constants():
    import electra_gdes.data as data
    assert (data.SINGLE_SEGMENT_PROB, data.RANDOM_LENGTH_PROB, data.MIN_RANDOM_LENGTH, data.SEGMENT_A_OVERFLOW_PROB) == (0.1, 0.05, 5, 0.5)


def test_electra_target_length_distribution():
    from electra_gdes.data import electra_target_length
    rng = random.Random(0)
    lengths = np.array([electra_target_length(rng, 128) for _ in range(20000)])
    short = lengths != 128
    assert abs(short.mean() - 0.05 * 123 / 124) < 4 * math.sqrt(0.05 * 0.95 / 20000)   # U[5, 128] hits 128 once in 124
    assert lengths.min() == 5 and lengths.max() == 128


def test_electra_segments_distribution():
    "Sentences of 31 tokens, target 128: A gets a sentence while empty or while it fits in (128-3)//2 = 62, or with p 0.5."
    from electra_gdes.data import split_segments
    rng = random.Random(0)
    a_lens = np.array([len(split_segments([[7] * 31] * 4, 128, rng)[0]) for _ in range(20000)])
    tol = 4 * math.sqrt(0.25 / 20000)
    assert abs((a_lens == 124).mean() - 0.1) < tol                 # one segment
    assert abs((a_lens == 62).mean() - 0.45) < tol                 # the overflow coin took the second sentence
    assert abs((a_lens == 31).mean() - 0.45) < tol
    assert set(a_lens) == {31, 62, 124}


def test_deberta_lines_are_510_tokens():
    from electra_gdes.data import deberta_lines
    lines = deberta_lines(list(range(10, 1010)), 512, 1, 2)
    assert [len(x) for x in lines] == [512, 492]
    assert lines[0][:2] == [1, 10] and lines[0][-2:] == [519, 2] and lines[1][1] == 520


# ---------------------------------------------------------------- GLUE fine-tuning
@pytest.mark.parametrize('size,lr,decay', [('small', 3e-4, 0.8), ('base', 1e-4, 0.8), ('large', 5e-5, 0.9)])
def test_glue_size_presets(size, lr, decay):
    cfg = FinetuneConfig(size=size)
    assert (cfg.lr, cfg.layer_decay) == (lr, decay)
    assert (cfg.batch_size, cfg.max_length, cfg.weight_decay, cfg.warmup_fraction, cfg.dropout, cfg.runs) == (32, 128, 0.0, 0.1, 0.1, 10)
    assert cfg.official_head_depth is False


def test_glue_task_epochs():
    cfg = FinetuneConfig(size='small')
    assert {t: cfg.task_epochs(t) for t in ('cola', 'sst2', 'mrpc', 'stsb', 'qqp', 'mnli', 'qnli', 'rte', 'wnli')} == \
        dict(cola=3, sst2=3, mrpc=3, stsb=10, qqp=3, mnli=3, qnli=3, rte=10, wnli=3)


def test_layerwise_decay_and_head_depth():
    "lr * decay^(L+1-depth), head at L+1 (official: L+2); L = 2, decay 0.5."
    from electra_gdes.glue_model import layerwise_lrs, head_depth
    np.testing.assert_allclose(layerwise_lrs(1.0, 0.5, 2), [0.125, 0.25, 0.5, 1.0])
    np.testing.assert_allclose(layerwise_lrs(1.0, 0.5, 2, official_head_depth=True), [0.0625, 0.125, 0.25, 1.0])
    assert (head_depth(12), head_depth(12, True)) == (13, 14)


def test_stsb_predictions_clipped_to_0_5():
    from electra_gdes.glue_metrics import clip_stsb, outputs_to_predictions
    np.testing.assert_array_equal(clip_stsb([-1.0, 0.0, 2.5, 5.0, 7.3]), [0.0, 0.0, 2.5, 5.0, 5.0])
    np.testing.assert_array_equal(outputs_to_predictions(np.array([-0.2, 5.5]), True), [0.0, 5.0])


class _Task:
    def __init__(self, name, is_regression=False): self.name, self.is_regression = name, is_regression


@pytest.fixture(scope='module')
def tiny_classifier(tmp_path_factory):
    import helpers
    from electra_gdes.glue_model import glue_classifier
    path = helpers.tiny_electra_checkpoint(tmp_path_factory.mktemp('ckpt'), helpers.tiny_tokenizer(['a', 'b']), hidden_size=16)
    return lambda n: glue_classifier(path, n)[0]


@pytest.mark.parametrize('task,epochs', [('rte', 10), ('stsb', 10), ('sst2', 3), ('mnli', 3)])
def test_finetune_learner_wiring(tiny_classifier, task, epochs):
    "What `finetune_learner` really uses: decay 0, warmup 10% of epochs x batches, the simultaneous schedule, MSE for STS-B, clip 1.0."
    from fastai.callback.training import GradientClip
    from electra_gdes.glue_finetune import finetune_learner, LayerwiseLRScheduler
    from electra_gdes.optim import AdamNoBiasCorrection
    reg = task == 'stsb'
    model = tiny_classifier(1 if reg else 2)
    dl = torch.utils.data.DataLoader(list(range(200)), batch_size=10)      # 20 batches per epoch
    learn = finetune_learner(FinetuneConfig(size='small'), _Task(task, reg), model, dl, dl)
    sched = next(c for c in learn.cbs if isinstance(c, LayerwiseLRScheduler))
    assert (sched.total, sched.warmup) == (20 * epochs, 2 * epochs)
    np.testing.assert_allclose(sched.lrs, [3e-4 * 0.8 ** 3, 3e-4 * 0.8 ** 2, 3e-4 * 0.8, 3e-4])   # 2 layers, head at L+1
    assert [c.max_norm for c in learn.cbs if isinstance(c, GradientClip)] == [1.0]
    assert isinstance(learn.loss_func.func, nn.MSELoss if reg else nn.CrossEntropyLoss)
    learn.create_opt()
    assert isinstance(learn.opt, AdamNoBiasCorrection) and len(learn.opt.hypers) == 4
    assert {(h['wd'], h['mom'], h['sqr_mom'], h['eps']) for h in learn.opt.hypers} == {(0.0, 0.9, 0.999, 1e-6)}
    # the schedule it sets: lr * (1 - t/T) * min(1, t/W)
    learn.opt.set_hyper('lr', 0.)
    sched.learn = learn
    learn.train_iter = epochs          # halfway through warmup
    sched.before_batch()
    T, W = 20 * epochs, 2 * epochs
    assert learn.opt.hypers[-1]['lr'] == pytest.approx(3e-4 * (1 - epochs / T) * (epochs / W))


@pytest.mark.parametrize('task', ['cola', 'sst2', 'mrpc', 'stsb', 'qqp', 'mnli', 'qnli', 'rte', 'wnli'])
def test_double_unordered_on_mrpc_and_stsb_only(monkeypatch, task):
    "`finetune_run` trains on the pairs plus their swapped copies for MRPC and STS-B, on the plain training set otherwise."
    import datasets
    import electra_gdes.glue_finetune as gf
    seen = {}
    class Stop(Exception): pass
    def fake_loader(ds, *a, **k): seen['train'] = ds; raise Stop
    monkeypatch.setattr(gf, 'glue_train_dataloader', fake_loader)
    monkeypatch.setattr(gf, 'glue_classifier', lambda *a, **k: (None, None))
    train = datasets.Dataset.from_dict({'idx': [0, 1, 2], 'sentence1': ['a', 'b', 'c'], 'sentence2': ['x', 'y', 'z'],
                                        'label': [0.0, 1.0, 2.0] if task == 'stsb' else [0, 1, 0]})
    glue_task = type('T', (), dict(name=task, train=train, dev={}, test={}, num_labels=1 if task == 'stsb' else 2,
                                   is_regression=task == 'stsb', synthetic=True))()
    with pytest.raises(Stop): gf.finetune_run(FinetuneConfig(size='small'), task, 0, glue_task)
    got = seen['train']
    if task in ('mrpc', 'stsb'):
        assert len(got) == 6 and got['sentence1'] == ['a', 'x', 'b', 'y', 'c', 'z']
    else:
        assert len(got) == 3 and got['sentence1'] == ['a', 'b', 'c']
