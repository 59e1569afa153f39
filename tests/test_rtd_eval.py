"""Held-out RTD evaluation: the ranking metrics, fixed masks and noise, no effect on training, the tug-of-war cosine
and the gradient paths it measures, the collapse warning, the CSV and the plot."""
import math, warnings
from pathlib import Path
import numpy as np, pytest, torch
import datasets
from fastai.callback.core import Callback
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from transformers import PreTrainedTokenizerFast
import electra_gdes.rtd_eval as rtd_eval
from electra_gdes.config import pretrain_config
from electra_gdes.model import GDESEmbedding
from electra_gdes.rtd import RTDLoss
from electra_gdes.train import pretrain_learner, fit_steps
from electra_gdes.logs import read_log
from electra_gdes.rtd_eval import (ranking_scores, held_out_metrics, held_out_batches, evaluate_rtd, tug_of_war, rtd_losses,
                                   word_tables, RTDEvalCallback, read_eval, write_eval, plot_run, EVAL_COLUMNS)

def _tokenizer():
    vocab = {t: i for i, t in enumerate(['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'] + [f'w{i}' for i in range(27)])}
    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer(WordLevel(vocab, unk_token='[UNK]')), pad_token='[PAD]',
                                   unk_token='[UNK]', cls_token='[CLS]', sep_token='[SEP]', mask_token='[MASK]')

def _learner(tmp_path, sharing='gdes', steps=6, cbs=None, n_valid=16, **kw):
    "A one-layer ELECTRA pair on 48 cyclic 22-token examples (32 train, `n_valid` held out)."
    rows = [{'input_ids': [2] + [5 + (s + j) % 20 for j in range(20)] + [3], 'token_type_ids': [0] * 22} for s in range(48)]
    ds = datasets.Dataset.from_list(rows)
    cfg = pretrain_config('electra', 'tiny', hidden_size=32, num_heads=2, intermediate_size=64, embedding_size=32, num_layers=1,
                          steps=steps, warmup_steps=2, batch_size=8, checkpoint_fractions=(), output_dir=str(tmp_path),
                          embedding_sharing=sharing, eval_every=2, **kw)
    return pretrain_learner(cfg, ds.select(range(32)), _tokenizer(), valid_dataset=ds.select(range(32, 32 + n_valid)) if n_valid else None,
                            cbs=cbs, device=torch.device('cpu'))

def test_ranking_scores_on_hand_computed_cases():
    # 3 of 4 (positive, negative) pairs ordered right; positives at ranks 1 and 3: AP = (1 + 2/3) / 2
    auc, ap = ranking_scores([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
    assert auc == pytest.approx(0.75) and ap == pytest.approx(5 / 6)
    # a tie between a positive and a negative counts half; at threshold 0.5 precision is 2/3 at recall 1
    auc, ap = ranking_scores([0.5, 0.5, 0.2, 0.9], [1, 0, 0, 1])
    assert auc == pytest.approx(0.875) and ap == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert all(math.isnan(x) for x in ranking_scores([0.3, 0.1], [1, 1]))

def test_held_out_metrics_on_a_hand_computed_case():
    m = held_out_metrics(torch.tensor([2.0, -1.0, 0.5, -3.0]), torch.tensor([1, 0, 0, 1]), mlm_loss_sum=6.0, mlm_correct=1, masked=4)
    # predicted replaced: tokens 0 and 2; replaced: 0 and 3 -> TP 1, FP 1, FN 1
    assert (m['precision'], m['recall'], m['f1'], m['disc_acc'], m['all_original_acc']) == (0.5, 0.5, 0.5, 0.5, 0.5)
    assert m['auc'] == pytest.approx(0.5) and (m['gen_loss'], m['gen_acc']) == (1.5, 0.25)
    expected = -np.mean([np.log(1 / (1 + np.exp(-2))), np.log(1 - 1 / (1 + np.exp(1))), np.log(1 - 1 / (1 + np.exp(-0.5))),
                         np.log(1 / (1 + np.exp(3)))])
    assert m['disc_loss'] == pytest.approx(expected)

def test_rtd_losses_are_the_terms_of_rtd_loss(tmp_path):
    learn = _learner(tmp_path)
    masked_ids, mask, types, is_masked, ids, seed = held_out_batches(learn)[0]
    out = learn.model(masked_ids, mask, types, is_masked)
    mlm, disc = rtd_losses(out, ids, is_masked, mask)
    total = RTDLoss(learn.cfg.disc_weight)(out, ids, is_masked, mask)
    assert torch.allclose(total, mlm + learn.cfg.disc_weight * disc)

class MaskProbe(Callback):
    "The masked inputs of every held-out batch fastai's validation sees."
    order = 0
    def __init__(self): self.seen = []
    def before_batch(self):
        if not self.training: self.seen.append(self.learn.xb[3].clone())

def test_held_out_masks_are_the_validation_masks_and_evaluation_is_repeatable(tmp_path):
    probe = MaskProbe()
    learn = _learner(tmp_path, cbs=[probe])
    learn.validate(); learn.validate()
    batches = held_out_batches(learn)
    assert len(batches) == 2 and len(probe.seen) == 4
    for i, b in enumerate(batches):
        assert torch.equal(b[3], probe.seen[i]) and torch.equal(b[3], probe.seen[i + 2])   # fixed per batch index
    learn.model.train()
    a, b = evaluate_rtd(learn), evaluate_rtd(learn, held_out_batches(learn))
    assert a == b                                                          # the same weights: the same numbers
    assert all(p.grad is None for p in learn.model.parameters())           # nothing accumulated
    assert all(m.training for m in learn.model.modules())                  # the mode it had
    assert a['tokens'] == 16 * 22 and 0 < a['masked'] < a['tokens'] and a['all_original_acc'] == pytest.approx(1 - a['replaced_share'])
    fit_steps(learn)
    assert evaluate_rtd(learn) != a                                        # and other weights: other numbers

def _weights(learn): return {k: v.clone() for k, v in learn.model.state_dict().items()}

@pytest.mark.parametrize('precision', ['fp32', 'bf16'])
def test_evaluation_does_not_change_training(tmp_path, precision):
    plain = fit_steps(_learner(tmp_path/'plain', steps=5, precision=precision))
    cb = RTDEvalCallback(every=1, printer=lambda s: None)
    learn = fit_steps(_learner(tmp_path/'eval', steps=5, precision=precision, cbs=[cb]))
    a, b = _weights(plain), _weights(learn)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [r['loss'] for r in read_log(tmp_path/'plain'/'electra-tiny-gdes'/'log.csv')] == \
           [r['loss'] for r in read_log(learn.cfg.run_dir/'log.csv')]
    assert [r['step'] for r in learn.rtd_eval.rows] == [1, 2, 3, 4, 5]

def test_eval_rows_are_written_printed_and_kept(tmp_path):
    lines = []
    learn = fit_steps(_learner(tmp_path, steps=5, cbs=[RTDEvalCallback(printer=lines.append)]))
    rows = learn.rtd_eval.rows
    assert [r['step'] for r in rows] == [2, 4, 5]                          # every eval_every steps and the last one
    assert read_eval(learn.cfg.run_dir/'eval.csv') == rows and list(rows[0]) == list(EVAL_COLUMNS)
    assert len(lines) == 3 and lines[-1].startswith('held-out step 5: ') and 'AUC' in lines[-1] and 'tug-of-war' in lines[-1]
    assert not list(learn.cfg.run_dir.glob('.tmp-*'))

def test_resume_keeps_only_earlier_rows(tmp_path):
    learn = _learner(tmp_path, steps=6, cbs=[RTDEvalCallback(printer=lambda s: None)])
    path = learn.cfg.run_dir/'eval.csv'
    write_eval(path, [{**dict.fromkeys(EVAL_COLUMNS, 0.5), 'step': s, 'tokens': 1, 'masked': 1} for s in (2, 4, 6)])
    learn.start_step = 2
    learn.rtd_eval.learn = learn; learn.rtd_eval.before_fit()
    assert [r['step'] for r in learn.rtd_eval.rows] == [2]

def test_write_eval_is_atomic(tmp_path, monkeypatch):
    path = tmp_path/'eval.csv'
    row = {**dict.fromkeys(EVAL_COLUMNS, 0.25), 'step': 2, 'tokens': 10, 'masked': 2}
    write_eval(path, [row])
    def crash(*a): raise OSError('disk full')
    monkeypatch.setattr(rtd_eval.os, 'replace', crash)
    with pytest.raises(OSError): write_eval(path, [row, {**row, 'step': 4}])
    monkeypatch.undo()
    assert read_eval(path) == [row] and not (tmp_path/'.tmp-eval.csv').exists()

def test_collapse_warning_in_the_second_half_only(tmp_path):
    with pytest.warns(UserWarning, match=r'--steps.*--temperature 2') as rec:
        fit_steps(_learner(tmp_path/'a', steps=6, cbs=[RTDEvalCallback(collapse_auc=1.01, printer=lambda s: None)]))
    msgs = [str(w.message) for w in rec if 'ROC-AUC' in str(w.message)]
    assert len(msgs) == 1 and 'at step 4 of 6' in msgs[0]                  # once, at the first eval of the second half
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter('always')
        fit_steps(_learner(tmp_path/'b', steps=6, cbs=[RTDEvalCallback(collapse_auc=0.0, printer=lambda s: None)]))
    assert not [w for w in rec if 'ROC-AUC' in str(w.message)]

def test_collapse_warning_tells_an_inverted_ranking_from_chance():
    from electra_gdes.rtd_eval import collapse_warning
    inverted, chance = collapse_warning(0.287, 150, 300), collapse_warning(0.49, 150, 300)
    assert 'ROC-AUC 0.287 at step 150 of 300' in inverted and 'below original ones' in inverted and 'as well as chance' not in inverted
    assert 'about as well as chance' in chance and 'below original' not in chance

def test_no_held_out_set_warns_and_writes_nothing(tmp_path):
    with pytest.warns(UserWarning, match='no held-out examples'):
        learn = fit_steps(_learner(tmp_path, steps=2, n_valid=0, cbs=[RTDEvalCallback(printer=lambda s: None)]))
    assert learn.rtd_eval.rows == [] and not (learn.cfg.run_dir/'eval.csv').exists()

def _manual_grads(learn, batch, loss_of):
    "`.grad` of every word table after `loss_of(mlm, disc).backward()` alone (the reference computation)."
    masked_ids, mask, types, is_masked, ids, seed = batch
    m = learn.model.eval()
    m.zero_grad(set_to_none=True)
    out = m(masked_ids, mask, types, is_masked, rng=torch.Generator().manual_seed(seed))
    loss_of(*rtd_losses(out, ids, is_masked, mask)).backward()
    g_emb, d_emb = m.generator.base_model.embeddings.word_embeddings, m.discriminator.base_model.embeddings.word_embeddings
    grads = {'E_G': g_emb.weight.grad, 'T_D': d_emb.delta.grad if isinstance(d_emb, GDESEmbedding) else d_emb.weight.grad}
    grads = {k: None if g is None else g.clone() for k, g in grads.items()}
    m.zero_grad(set_to_none=True); m.train()
    return grads

def _cos(a, b): return float((a * b).sum() / (a.norm() * b.norm()))

def test_tug_of_war_on_a_shared_table_equals_the_manual_cosine(tmp_path):
    learn = fit_steps(_learner(tmp_path, 'es', steps=3))
    batch = held_out_batches(learn)[0]
    e_g, t_d = word_tables(learn.model)
    assert t_d is e_g
    w = learn.cfg.disc_weight
    g_mlm = _manual_grads(learn, batch, lambda mlm, disc: mlm)['E_G']
    g_rtd = _manual_grads(learn, batch, lambda mlm, disc: w * disc)['E_G']
    tug = tug_of_war(learn.model, batch, w)
    assert tug['tug_cos'] == pytest.approx(_cos(g_mlm, g_rtd), abs=1e-5)
    assert tug['tug_mlm_norm'] == pytest.approx(float(g_mlm.norm()), rel=1e-5)
    assert tug['tug_rtd_norm'] == pytest.approx(float(g_rtd.norm()), rel=1e-5) == pytest.approx(tug['tug_rtd_on_gen_norm'])
    assert all(p.grad is None for p in learn.model.parameters())

@pytest.mark.parametrize('sharing', ['gdes', 'nes'])
def test_tug_of_war_gradient_paths(tmp_path, sharing):
    "GDES: RTD never reaches E_G, MLM never reaches E_delta; the cosine compares g_MLM on E_G with g_RTD on E_delta (= on E_D)."
    learn = fit_steps(_learner(tmp_path, sharing, steps=3))
    batch = held_out_batches(learn)[0]
    e_g, t_d = word_tables(learn.model)
    d_emb = learn.model.discriminator.base_model.embeddings.word_embeddings
    assert t_d is not e_g and (t_d is d_emb.delta if sharing == 'gdes' else t_d is d_emb.weight)
    w = learn.cfg.disc_weight
    mlm_only, rtd_only = _manual_grads(learn, batch, lambda mlm, disc: mlm), _manual_grads(learn, batch, lambda mlm, disc: w * disc)
    assert mlm_only['T_D'] is None and rtd_only['E_G'] is None          # the paths stopped by construction
    assert mlm_only['E_G'].norm() > 0 and rtd_only['T_D'].norm() > 0
    tug = tug_of_war(learn.model, batch, w)
    assert (tug['tug_rtd_on_gen_norm'], tug['tug_mlm_on_disc_norm']) == (0.0, 0.0)
    assert tug['tug_cos'] == pytest.approx(_cos(mlm_only['E_G'], rtd_only['T_D']), abs=1e-5)
    assert tug['tug_rtd_norm'] == pytest.approx(float(rtd_only['T_D'].norm()), rel=1e-5)

def test_plot_run_draws_log_and_held_out_points(tmp_path):
    learn = fit_steps(_learner(tmp_path, steps=6, log_every=1, cbs=[RTDEvalCallback(printer=lambda s: None)]))
    fig = plot_run(learn.cfg.run_dir, tmp_path/'run.png')
    assert (tmp_path/'run.png').stat().st_size > 10_000 and not (tmp_path/'.tmp-run.png').exists()
    titles = [ax.get_title() for ax in fig.axes]
    for t in ('losses', 'learning rate', 'discriminator accuracy', 'held-out ranking', 'tug-of-war on the word table'): assert t in titles
    acc = fig.axes[titles.index('discriminator accuracy')]
    assert 'all-original baseline (held-out)' in [l.get_label() for l in acc.get_lines()]
    ranking = fig.axes[titles.index('held-out ranking')]
    auc_line = next(l for l in ranking.get_lines() if l.get_label() == 'ROC-AUC')
    assert list(auc_line.get_xdata()) == [2, 4, 6]
    (learn.cfg.run_dir/'eval.csv').unlink()                                # a run without held-out points still plots
    assert plot_run(learn.cfg.run_dir) is not None
    with pytest.raises(ValueError, match='log.csv'): plot_run(tmp_path/'missing')

def test_evaluation_is_fp32_whatever_the_training_precision(tmp_path):
    "Under bf16 the logits would be rounded into ties that flatten the AUC; the held-out numbers are those of the fp32 weights."
    a = evaluate_rtd(_learner(tmp_path/'a', precision='bf16'))
    b = evaluate_rtd(_learner(tmp_path/'b', precision='fp32'))
    assert a == b
