"Masking, sampling, RTD labels, loss and metrics: each test checks values against the definition."
import math
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import stats

from electra_gdes.config import pretrain_config
from electra_gdes.data import load_tokenizer
from electra_gdes.model import RTDOutput
from electra_gdes.rtd import (RTDLoss, masking_excluded_ids, disc_accuracy, gumbel_sample, mask_tokens, masked_count, mlm_accuracy,
                              multinomial_sample, replaced_f1, replaced_precision, replaced_recall, rtd_labels, masked_positions)


@pytest.fixture(scope='module')
def tok(): return load_tokenizer(pretrain_config('electra', 'tiny'))


@pytest.fixture(scope='module')
def batch(tok):
    "Sequences of very different lengths, padded to 128: a full one, a pair, a short one, a minimal one."
    long_text = ' '.join(['the president spoke to the congress about the state of the union'] * 20)
    enc = tok([long_text, 'we the people', 'of the united states', 'hi'], truncation=True, max_length=128,
              padding='max_length', return_tensors='pt')
    pair = tok('we the people', 'in order to form a more perfect union', max_length=128, padding='max_length',
               return_tensors='pt')
    ids = torch.cat([enc['input_ids'], pair['input_ids']])
    attn = torch.cat([enc['attention_mask'], pair['attention_mask']])
    return ids, attn


def expected_counts(ids, attn, specials, p=0.15, max_length=128):
    n = attn.sum(-1).tolist()
    cand = (attn.bool() & ~torch.isin(ids, torch.tensor(specials))).sum(-1).tolist()
    return [min(max(1, min(round(p * k), int((p + 0.005) * max_length))), c) for k, c in zip(n, cand)]


def test_masked_count_formula():
    n = torch.tensor([128, 128, 100, 20, 10, 3, 4])
    cand = torch.tensor([126, 126, 98, 18, 8, 1, 0])
    assert masked_count(n, cand, 0.15, 128).tolist() == [19, 19, 15, 3, 2, 1, 0]
    assert masked_count(n[:1], cand[:1], 0.25, 128).tolist() == [32]      # ELECTRA-large: 25%, cap int(0.255*128)=32


def test_exact_count_and_never_special_or_pad(tok, batch):
    ids, attn = batch
    specials = tok.all_special_ids
    want = expected_counts(ids, attn, specials)
    assert want[0] == 19 and want[3] == 1                    # the full sequence hits the cap; [CLS] hi [SEP] masks 1
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        masked, is_masked = mask_tokens(ids, attn, specials, tok.mask_token_id, len(tok), 0.15, 'electra', g)
        assert is_masked.sum(-1).tolist() == want
        assert not (is_masked & torch.isin(ids, torch.tensor(specials))).any()
        assert not (is_masked & ~attn.bool()).any()
        assert torch.equal(masked[~is_masked], ids[~is_masked])


def test_deberta_masks_one_per_window_of_six(tok, batch):
    ids, attn = batch
    cand = attn.bool() & ~torch.isin(ids, torch.tensor(tok.all_special_ids))
    n_cand = cand.sum(-1).tolist()
    want = [min(-(-c // 6), k) for c, k in zip(n_cand, expected_counts(ids, attn, tok.all_special_ids))]
    assert want[0] == 19 and n_cand[0] == 126                # 21 windows of 6 candidates, capped at 19
    g = torch.Generator().manual_seed(2)
    hits = torch.zeros(126)
    for _ in range(200):
        masked, is_masked = mask_tokens(ids, attn, tok.all_special_ids, tok.mask_token_id, len(tok), 0.15, 'deberta', g)
        assert is_masked.sum(-1).tolist() == want
        assert torch.equal(masked[is_masked], torch.full((sum(want),), tok.mask_token_id))
        row = is_masked[0][cand[0]].float()                  # the first row's candidates, in order
        assert row.view(21, 6)[:19].sum(-1).tolist() == [1.0] * 19 and row.view(21, 6)[19:].sum() == 0
        hits += row
    assert stats.chisquare(hits[:114].view(19, 6).numpy(), axis=1).pvalue.min() > 1e-4   # uniform inside each window


def test_cap_uses_max_length_not_batch_length(tok):
    ids = torch.tensor([[tok.cls_token_id] + [2000] * 8 + [tok.sep_token_id]])   # 10 tokens, batch padded to 10
    attn = torch.ones_like(ids)
    _, m_batch = mask_tokens(ids, attn, tok.all_special_ids, tok.mask_token_id, len(tok), 0.15)
    _, m_cfg = mask_tokens(ids, attn, tok.all_special_ids, tok.mask_token_id, len(tok), 0.15, max_length=128)
    assert m_batch.sum().item() == int(0.155 * 10) == 1          # capped by the batch length
    assert m_cfg.sum().item() == round(0.15 * 10) == 2           # round(1.5) = 2 under the cap 19 of length 128


def test_positions_uniform_over_candidates(tok):
    ids = torch.tensor([[tok.cls_token_id] + list(range(2000, 2010)) + [tok.sep_token_id]]).repeat(4000, 1)
    _, is_masked = mask_tokens(ids, torch.ones_like(ids), tok.all_special_ids, tok.mask_token_id, len(tok), 0.15,
                               generator=torch.Generator().manual_seed(3), max_length=128)
    counts = is_masked.sum(0)[1:-1].numpy()                  # round(0.15*12)=2 per row among 10 candidates
    assert counts.sum() == 8000
    assert stats.chisquare(counts).pvalue > 1e-3


@pytest.mark.parametrize('style', ['electra', 'deberta', 'bert'])
def test_replacement_split(tok, batch, style):
    ids, attn = batch
    ids, attn = ids.repeat(200, 1), attn.repeat(200, 1)
    masked, is_masked = mask_tokens(ids, attn, tok.all_special_ids, tok.mask_token_id, len(tok), 0.15, style,
                                    torch.Generator().manual_seed(1))
    n = is_masked.sum().item()
    to_mask = (masked[is_masked] == tok.mask_token_id).float().mean().item()
    kept = (masked[is_masked] == ids[is_masked]).float().mean().item()
    random = 1 - to_mask - kept
    p_mask, p_rand = {'electra': (0.85, 0.0), 'deberta': (1.0, 0.0), 'bert': (0.8, 0.1)}[style]   # published, not the code's
    assert n == 200 * 24
    tol = 4 * math.sqrt(0.25 / n)
    assert abs(to_mask - p_mask) < tol and abs(random - p_rand) < tol and abs(kept - (1 - p_mask - p_rand)) < tol
    if style == 'bert':   # the random tokens really are spread over the vocabulary
        assert len(set(masked[is_masked & (masked != ids) & (masked != tok.mask_token_id)].tolist())) > 0.9 * random * n


def test_masking_is_reproducible_and_validated(tok, batch):
    ids, attn = batch
    a = mask_tokens(ids, attn, tok.all_special_ids, tok.mask_token_id, len(tok), generator=torch.Generator().manual_seed(5))
    b = mask_tokens(ids, attn, tok.all_special_ids, tok.mask_token_id, len(tok), generator=torch.Generator().manual_seed(5))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    with pytest.raises(ValueError, match='cfg.mask_style'):
        mask_tokens(ids, attn, tok.all_special_ids, tok.mask_token_id, len(tok), style='span')
    with pytest.raises(ValueError, match='same padded batch'):
        mask_tokens(ids, attn[:, :10], tok.all_special_ids, tok.mask_token_id, len(tok))
    with pytest.raises(ValueError, match='cfg.mask_prob'):
        mask_tokens(ids, attn, tok.all_special_ids, tok.mask_token_id, len(tok), mask_prob=15)


def test_gumbel_is_the_gumbel_max_formula():
    logits = torch.randn(7, 11, dtype=torch.bfloat16)
    u = torch.rand(logits.shape, generator=torch.Generator().manual_seed(9))
    g = -torch.log(-torch.log(u + 1e-9) + 1e-9)
    want = (logits.float() / 0.7 + g).argmax(-1)
    assert torch.equal(gumbel_sample(logits, 0.7, torch.Generator().manual_seed(9)), want)


@pytest.mark.parametrize('sample', [gumbel_sample, multinomial_sample])
@pytest.mark.parametrize('temperature', [1.0, 0.5])
def test_sample_frequencies_match_softmax(sample, temperature):
    logits = torch.tensor([1.5, 0.0, -0.5, 0.7, -2.0, 0.2])
    n = 30000
    draws = sample(logits.expand(n, -1), temperature, torch.Generator().manual_seed(4))
    observed = np.bincount(draws.numpy(), minlength=6)
    expected = torch.softmax(logits.double() / temperature, -1).numpy() * n
    assert stats.chisquare(observed, expected).pvalue > 1e-3


@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
def test_samplers_leave_the_logits_untouched(dtype):
    "The samplers work in place on their own noise, never on the logits (which the MLM loss still needs)."
    logits = torch.randn(64, 50, generator=torch.Generator().manual_seed(0)).to(dtype)
    before = logits.clone()
    for sample in (gumbel_sample, multinomial_sample):
        s = sample(logits, 0.5, torch.Generator().manual_seed(1))
        assert s.dtype == torch.long and s.shape == (64,) and torch.equal(logits, before)


def tiny_output():
    orig = torch.tensor([[2, 7, 3, 0], [2, 8, 5, 3]])
    disc_input = torch.tensor([[2, 9, 3, 0], [2, 8, 6, 3]])     # (0,1), (1,2) replaced; (1,1) sampled correctly
    is_masked = torch.tensor([[False, True, False, False], [False, True, True, False]])
    # two slots per row, in the fixed layout of the model's output: row 0's second slot is spare (its logits, all 9,
    # must count for nothing)
    mlm_logits = torch.tensor([[[0.0, 1.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.5, 0.0, 0.0], [9.0] * 10],
                               [[1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 4.0, 0.0],
                                [0.0, 0.0, 0.0, 0.0, 0.0, 3.0, 0.0, 0.0, 0.0, 0.0]]])
    disc_logits = torch.tensor([[-1.0, 0.3, 0.2, 5.0], [-0.4, -3.0, 2.0, 1.0]])
    attn = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
    positions, valid = masked_positions(is_masked, 2)
    out = RTDOutput(mlm_logits, disc_input.gather(1, positions), disc_input, disc_logits, positions, valid)
    return out, orig, is_masked, attn


def test_rtd_labels_count_a_correct_sample_as_original():
    out, orig, _, _ = tiny_output()
    assert rtd_labels(out.disc_input, orig).tolist() == [[0, 1, 0, 0], [0, 0, 1, 0]]


@pytest.mark.parametrize('weight', [50.0, 10.0])
def test_rtd_loss_by_hand(weight):
    out, orig, is_masked, attn = tiny_output()
    out = out._replace(mlm_logits=out.mlm_logits.requires_grad_(), disc_logits=out.disc_logits.requires_grad_())
    def ce(row, target): return math.log(sum(math.exp(x) for x in row)) - row[target]
    def bce(x, y): return math.log1p(math.exp(-x)) if y else math.log1p(math.exp(x))
    rows = out.mlm_logits[out.slot_valid].tolist()
    mlm = (ce(rows[0], 7) + ce(rows[1], 8) + ce(rows[2], 5)) / 3
    # all 7 non-pad tokens, [CLS] and [SEP] included; the pad logit 5.0 is left out
    disc = (bce(-1.0, 0) + bce(0.3, 1) + bce(0.2, 0) + bce(-0.4, 0) + bce(-3.0, 0) + bce(2.0, 1) + bce(1.0, 0)) / 7
    loss_func = RTDLoss(weight)
    loss = loss_func(out, orig, is_masked, attn)
    assert loss.item() == pytest.approx(mlm + weight * disc, rel=1e-6)
    assert loss_func.mlm_loss.item() == pytest.approx(mlm, rel=1e-6)
    assert loss_func.disc_loss.item() == pytest.approx(disc, rel=1e-6)
    assert loss.requires_grad and not loss_func.mlm_loss.requires_grad and not loss_func.disc_loss.requires_grad


def test_rtd_loss_gradients_and_errors():
    out, orig, is_masked, attn = tiny_output()
    mlm_logits = out.mlm_logits.clone().requires_grad_()
    disc_logits = out.disc_logits.clone().requires_grad_()
    RTDLoss(50.0)(out._replace(mlm_logits=mlm_logits, disc_logits=disc_logits), orig, is_masked, attn).backward()
    assert disc_logits.grad[0, 3] == 0                                        # pad: no gradient
    want = 50.0 * (torch.sigmoid(disc_logits[1, 2]) - 1) / 7                  # d(w * mean BCE)/dx = w (sigmoid(x) - y) / n
    assert disc_logits.grad[1, 2].item() == pytest.approx(want.item(), rel=1e-5)
    want_mlm = (torch.softmax(out.mlm_logits[0, 0], -1) - F.one_hot(torch.tensor(7), 10)) / 3
    assert torch.allclose(mlm_logits.grad[0, 0], want_mlm, atol=1e-6)
    assert (mlm_logits.grad[0, 1] == 0).all()                                 # a spare slot: no gradient
    empty = out._replace(slot_valid=torch.zeros_like(out.slot_valid))         # nothing masked: finite, the MLM term 0
    loss_func = RTDLoss(50.0)
    assert torch.isfinite(loss_func(empty, orig, torch.zeros_like(is_masked), attn)) and loss_func.mlm_loss.item() == 0


def test_metrics_by_hand():
    out, orig, is_masked, attn = tiny_output()
    # generator argmax: 2 (orig 7, wrong), 8 (orig 8, right), 5 (orig 5, right)
    assert mlm_accuracy(out, orig, is_masked, attn) == pytest.approx(2 / 3)
    # discriminator says replaced at (0,1), (0,2), (1,2), (1,3) [pad (0,3) ignored]; labels replaced at (0,1), (1,2)
    assert disc_accuracy(out, orig, is_masked, attn) == pytest.approx(5 / 7)
    assert replaced_precision(out, orig, is_masked, attn) == pytest.approx(2 / 4)
    assert replaced_recall(out, orig, is_masked, attn) == pytest.approx(2 / 2)
    assert replaced_f1(out, orig, is_masked, attn) == pytest.approx(2 * 0.5 * 1 / 1.5)
    none = out._replace(disc_logits=-torch.ones_like(out.disc_logits))
    assert replaced_precision(none, orig, is_masked, attn) == 0 and replaced_f1(none, orig, is_masked, attn) == 0


@pytest.mark.parametrize('mask_unk', [True, False])
def test_mask_unk(tok, mask_unk):
    """ELECTRA's candidates exclude only [CLS], [SEP], [MASK] and padding, so [UNK] is masked like any token
    (`mask_unk=True`); with `mask_unk=False` it never is. Nothing else changes: the other specials stay excluded."""
    excluded = masking_excluded_ids(tok, mask_unk)
    assert set(excluded) == {tok.cls_token_id, tok.sep_token_id, tok.mask_token_id, tok.pad_token_id} | \
        (set() if mask_unk else {tok.unk_token_id})
    # [CLS] w [UNK] w [UNK] ... [SEP] [PAD] [PAD]: 20 words, half of them [UNK]
    row = [tok.cls_token_id] + [tok.unk_token_id if i % 2 else 2000 + i for i in range(20)] + [tok.sep_token_id] + [tok.pad_token_id] * 2
    ids = torch.tensor([row]).repeat(3000, 1)
    attn = (ids != tok.pad_token_id).long()
    _, is_masked = mask_tokens(ids, attn, excluded, tok.mask_token_id, len(tok), 0.15, 'electra',
                               torch.Generator().manual_seed(0), max_length=128)
    assert (is_masked.sum(-1) == 3).all()                                 # round(0.15 * 22) = 3 of 22 real tokens
    unk = ids == tok.unk_token_id
    assert not (is_masked & torch.isin(ids, torch.tensor(excluded))).any()
    share = is_masked[unk].float().mean().item()
    if mask_unk:   # uniform over the 20 candidates: 3/20 of each, [UNK] included
        assert abs(share - 3 / 20) < 4 * math.sqrt(0.15 * 0.85 / unk.sum().item())
    else:          # only the 10 words are candidates
        assert share == 0 and is_masked[~unk & attn.bool()].float().sum().item() == 3 * 3000
