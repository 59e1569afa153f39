"""The published SQuAD recipe, pinned: every number here is a literal from the sources (never read back from the library).

google-research/electra `configure_finetuning.py`: max_seq_length 512 for SQuAD, doc_stride 128, max_query_length 64,
num_train_epochs 2.0 for SQuAD, train_batch_size 32, warmup_proportion 0.1, n_best_size 20, max_answer_length 30,
learning_rate 1e-4 / layerwise_lr_decay 0.8, large 5e-5 / 0.9; `finetune/qa/qa_tasks.py`: logits += 1000 * (answer_mask - 1)
over [CLS] and the context, loss (start_loss + end_loss) / 2; windows start doc_stride apart; BERT's max-context score.
ELECTRA paper, Appendix Table 7: lr 3e-4 Small, 1e-4 Base, 5e-5 Large; decay 0.8 (Large 0.9); weight decay 0; "2 for SQuAD".
DeBERTaV3: no published SQuAD fine-tuning settings (the library's documented choice: ELECTRA's by size)."""
import math
import numpy as np
import pytest
import torch

from electra_gdes.config import SquadConfig
from electra_gdes.squad_finetune import (ANSWER_MASK_LOGIT, doc_windows, max_context_masks, span_loss, squad_epochs)


def test_feature_and_prediction_settings():
    c = SquadConfig(size='small')
    assert (c.max_length, c.doc_stride, c.max_query_length) == (512, 128, 64)
    assert (c.batch_size, c.warmup_fraction, c.weight_decay) == (32, 0.1, 0.0)
    assert (c.n_best_size, c.max_answer_length) == (20, 30)
    assert c.epochs is None and squad_epochs(c) == 2
    assert c.null_threshold is None   # SQuAD 2.0: chosen on dev


@pytest.mark.parametrize('size,lr,decay', [('small', 3e-4, 0.8), ('base', 1e-4, 0.8), ('large', 5e-5, 0.9),
                                           ('xsmall', 3e-4, 0.8), ('tiny', 3e-4, 0.8)])
def test_size_presets(size, lr, decay):
    c = SquadConfig(size=size)
    assert (c.lr, c.layer_decay) == (lr, decay)


@pytest.mark.parametrize('hidden,layers,size', [(256, 12, 'small'), (768, 12, 'base'), (1024, 24, 'large'), (128, 2, 'small')])
def test_size_from_the_checkpoint(tmp_path, hidden, layers, size):
    (tmp_path/'config.json').write_text(f'{{"model_type": "electra", "hidden_size": {hidden}, "num_hidden_layers": {layers}}}')
    assert SquadConfig(checkpoint=str(tmp_path)).size == size


def test_windows_start_doc_stride_apart():
    # ELECTRA / BERT: start += min(length, doc_stride); the last window ends at the context's end
    assert doc_windows(1000, 445, 128) == [(0, 445), (128, 445), (256, 445), (384, 445), (512, 445), (640, 360)]
    assert doc_windows(445, 445, 128) == [(0, 445)]
    assert doc_windows(446, 445, 128) == [(0, 445), (128, 318)]


def test_max_context_score():
    # score = min(left, right) + 0.01 * length; token 5 in windows (0, 10) and (3, 10): min(5, 4) = 4 vs min(2, 7) = 2
    m = max_context_masks([(0, 10), (3, 10)], 13)
    assert m[0][5] and not m[1][5 - 3]
    # a tie (token 6: min(6, 3) = 3 vs min(3, 6) = 3, same length) goes to the first window
    assert m[0][6] and not m[1][6 - 3]


def test_answer_mask_and_loss():
    assert ANSWER_MASK_LOGIT == 1000.0
    logits = torch.zeros(1, 4, 2)
    logits[0, 1, 0], logits[0, 2, 1] = 2.0, 1.0
    pos = torch.tensor([[1, 2]])
    start = -math.log(math.exp(2) / (math.exp(2) + 3))
    end = -math.log(math.exp(1) / (math.exp(1) + 3))
    assert span_loss(logits, pos).item() == pytest.approx((start + end) / 2, rel=1e-6)


def test_learner_wiring(tmp_path):
    "What `squad_learner` really uses: lr x decay^(L+1-depth) per depth (head at L+1), warmup 10% of epochs x batches, clip 1.0."
    from fastai.callback.training import GradientClip
    from helpers import tiny_electra_checkpoint, tiny_tokenizer
    from electra_gdes.glue_finetune import LayerwiseLRScheduler
    from electra_gdes.squad_finetune import squad_dataloader, squad_learner, squad_model
    path = tiny_electra_checkpoint(tmp_path/'disc', tiny_tokenizer(['a', 'b']), num_hidden_layers=2)
    model, tok = squad_model(path, seed=0)
    feats = [dict(input_ids=np.array([2, 5, 3, 6, 3]), n_question=1, positions=(3, 3)) for _ in range(40)]
    dl = squad_dataloader(feats, 0, 8, shuffle=True)
    learn = squad_learner(SquadConfig(checkpoint=str(path), size='small'), model, dl, dl)
    sched = next(cb for cb in learn.cbs if isinstance(cb, LayerwiseLRScheduler))
    np.testing.assert_allclose(sched.lrs, [3e-4 * 0.8 ** 3, 3e-4 * 0.8 ** 2, 3e-4 * 0.8, 3e-4])   # embeddings, 2 layers, head
    assert (sched.total_steps, sched.warmup_steps) == (2 * 5, 1)   # 2 epochs of 5 batches, 10% warmup
    assert next(cb for cb in learn.cbs if isinstance(cb, GradientClip)).max_norm == 1.0
    learn.create_opt()
    assert len(learn.opt.param_groups) == 4 and all(g['wd'] == 0.0 for g in learn.opt.hypers)
