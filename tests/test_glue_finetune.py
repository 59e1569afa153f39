"GLUE fine-tuning: layer-wise lrs, schedule, head, metrics, results file, resume, selection, and a tiny end-to-end run."
import contextlib, io, json, math, warnings
from dataclasses import replace
from pathlib import Path

import numpy as np, pytest, torch
torch.set_num_threads(1)  # tiny models: one thread is faster, and the tests share the CPU
from transformers import ElectraForPreTraining

import helpers
from helpers import tiny_electra_checkpoint
from electra_gdes.config import FinetuneConfig, pretrain_config
from electra_gdes.model import CPU_ATTENTION
from electra_gdes.glue_data import POSITIVE_WORDS, NEGATIVE_WORDS, glue_features, make_practice_glue
import electra_gdes.glue_finetune as gf
from electra_gdes.glue_model import GlueClassifier, glue_classifier, layerwise_lrs, layerwise_splitter, load_backbone
from electra_gdes.glue_metrics import clip_stsb, glue_metrics, outputs_to_predictions, summary_table
from electra_gdes.glue_finetune import LayerwiseLRScheduler, append_result, finetune_run, finetune_sweep, read_results, results_path, task_run_dir, select_runs

FIXTURES = Path(__file__).parent/'fixtures'/'glue'
WORDS = ('the', 'a', 'and', 'of', 'to', 'in', 'is', 'was', *POSITIVE_WORDS, *NEGATIVE_WORDS)

def tiny_tokenizer(words=WORDS): return helpers.tiny_tokenizer(words)

def electra_checkpoint(path, n_layers=2, hidden=64, tokenizer=None):
    return tiny_electra_checkpoint(path, tokenizer or tiny_tokenizer(), embedding_size=32, hidden_size=hidden,
                                   num_hidden_layers=n_layers)

@pytest.fixture(scope='module')
def practice(tmp_path_factory):
    texts = (FIXTURES/'corpus.txt').read_text().split('\n\n')
    warnings.filterwarnings('ignore', message='.*SYNTHETIC.*')
    return make_practice_glue(tmp_path_factory.mktemp('glue')/'practice', texts, n_train=200, n_dev=100, n_test=20)

# layer-wise learning rates, by hand: lr 3e-4, decay 0.8, 12 layers
def test_layerwise_lrs_12_layers():
    lrs = layerwise_lrs(3e-4, 0.8, 12)
    assert len(lrs) == 14  # embeddings, 12 layers, head
    want = {0: 3e-4 * 0.054975581388800036, 1: 3e-4 * 0.06871947673600004, 6: 3e-4 * 0.2097152, 12: 2.4e-4, 13: 3e-4}
    for i, v in want.items(): assert lrs[i] == pytest.approx(v, rel=1e-12)

def test_layerwise_lrs_official_head_depth():
    lrs = layerwise_lrs(3e-4, 0.8, 12, official_head_depth=True)
    # the head at L+2: every depth one decay step lower than the head, the head itself keeps lr
    want = {0: 3e-4 * 0.04398046511104003, 1: 3e-4 * 0.054975581388800036, 12: 1.92e-4, 13: 3e-4}
    for i, v in want.items(): assert lrs[i] == pytest.approx(v, rel=1e-12)

def test_param_groups_follow_depth(tmp_path):
    model, _ = glue_classifier(electra_checkpoint(tmp_path/'d', n_layers=12, hidden=16), 2)
    groups = layerwise_splitter(model)
    assert len(groups) == 14
    names = {id(p): n for n, p in model.named_parameters()}
    assert all('embeddings' in names[id(p)] for p in groups[0])  # word/position/type tables, LayerNorm, projection
    for i in range(12): assert all(f'encoder.layer.{i}.' in names[id(p)] for p in groups[i + 1])
    assert [names[id(p)] for p in groups[13]] == ['head.weight', 'head.bias']

def test_schedule_sets_every_group(tmp_path):
    "The Learner's lrs per step: lrs[group] * (1 - t/T) * min(1, t/W), W = 10% of T."
    from fastai.basics import Learner, DataLoaders, CrossEntropyLossFlat
    model, _ = glue_classifier(electra_checkpoint(tmp_path/'d', n_layers=2, hidden=16), 2)
    x = torch.randint(5, 10, (40, 6)); ds = [(i, torch.ones_like(i), torch.zeros_like(i), torch.tensor(1)) for i in x]
    dl = torch.utils.data.DataLoader(ds, batch_size=2)
    lrs = layerwise_lrs(1e-3, 0.5, 2)
    sched = LayerwiseLRScheduler(lrs, total_steps=20, warmup_steps=2)
    learn = Learner(DataLoaders(dl, dl), model, CrossEntropyLossFlat(), opt_func=gf.adam_no_bias_correction,
                    splitter=layerwise_splitter, cbs=sched)
    with learn.no_bar(), learn.no_logging(): learn.fit(1)
    h = np.array(sched.history)
    assert h.shape == (20, 4)
    np.testing.assert_allclose(h[0], 0)
    np.testing.assert_allclose(h[1], lrs * 0.95 * 0.5)
    np.testing.assert_allclose(h[10], lrs * 0.5)
    np.testing.assert_allclose(h[1] / h[1, -1], [0.125, 0.25, 0.5, 1.0])

def test_head_init_xavier_zero_bias(tmp_path):
    backbone, _ = load_backbone(electra_checkpoint(tmp_path/'d', hidden=64))
    torch.manual_seed(0)
    head = GlueClassifier(backbone, 300, dropout=0.1).head
    assert torch.equal(head.bias, torch.zeros(300))
    bound = math.sqrt(6 / (64 + 300))
    assert head.weight.abs().max() <= bound
    assert head.weight.var().item() == pytest.approx(2 / (64 + 300), rel=0.05)  # U(-b, b): var b^2/3
    assert head.weight.mean().abs() < 0.1 * bound

def test_stsb_clipping():
    np.testing.assert_array_equal(clip_stsb([-1.0, 0.0, 2.25, 5.0, 7.5]), [0.0, 0.0, 2.25, 5.0, 5.0])
    np.testing.assert_array_equal(outputs_to_predictions(np.array([-0.2, 5.3]), is_regression=True), [0.0, 5.0])

def test_metrics_by_hand():
    p, y = [1, 1, 1, 0, 0, 0, 1, 0], [1, 1, 0, 0, 0, 1, 1, 1]
    # TP 3, FP 1, FN 2, TN 2: acc 5/8, F1 = 6/9, MCC = (3*2 - 1*2)/sqrt(4*5*3*4) = 4/sqrt(240)
    m = glue_metrics('mrpc', p, y)
    assert m['accuracy'] == pytest.approx(5 / 8) and m['f1'] == pytest.approx(2 / 3)
    assert glue_metrics('cola', p, y)['mcc'] == pytest.approx(4 / math.sqrt(240))
    assert set(glue_metrics('qqp', p, y)) == {'accuracy', 'f1'} and set(glue_metrics('qnli', p, y)) == {'accuracy'}
    # STS-B: preds 1,2,3,4 vs labels 2,1,4,3: Spearman = 1 - 6*sum(d^2)/(n(n^2-1)) = 1 - 6*4/60 = 0.6; Pearson the same
    s = glue_metrics('stsb', [1., 2., 3., 4.], [2., 1., 4., 3.])
    assert s['spearman'] == pytest.approx(0.6) and s['pearson'] == pytest.approx(0.6)

def test_selection_best_and_topk(tmp_path):
    path = tmp_path/'results.jsonl'
    for run, score in enumerate([0.55, 0.70, 0.62, 0.68]): append_result(path, dict(task='rte', run=run, score=score, synthetic=True))
    append_result(path, dict(task='cola', run=0, score=0.3, synthetic=True))
    results = read_results(path)
    assert [r['run'] for r in select_runs(results, 'rte')] == [1]
    assert [r['run'] for r in select_runs(results, 'rte', 'topk-mean', top_k=3)] == [1, 3, 2]
    table = summary_table(results, ('cola', 'rte'))
    assert table.loc['rte', 'best'] == 70.0 and table.loc['rte', 'mean'] == pytest.approx(63.75)
    assert table.loc['rte', 'median'] == pytest.approx(65.0)
    assert table.loc['rte', 'std'] == pytest.approx(100 * np.std([0.55, 0.70, 0.62, 0.68], ddof=1), abs=0.01)
    with pytest.raises(ValueError, match="no finished run of 'mnli'"): select_runs(results, 'mnli')

def test_resume_skips_finished_runs(tmp_path, monkeypatch, practice):
    "Runs with a results line and a saved folder are skipped; a run interrupted before its line is done again."
    cfg = FinetuneConfig(checkpoint=str(electra_checkpoint(tmp_path/'d', hidden=16)), glue_dir=str(practice), tasks=('rte', 'cola'),
                         runs=2, output_dir=str(tmp_path))
    done = []
    def fake_run(cfg, task, run_index, glue_task=None):
        done.append((task, run_index))
        task_run_dir(cfg, task, run_index).mkdir(parents=True, exist_ok=True); (task_run_dir(cfg, task, run_index)/'run.json').write_text('{}')
        append_result(results_path(cfg), dict(task=task, run=run_index, score=0.5, metrics={'accuracy': 0.5, 'mcc': 0.5}, synthetic=True))
        return {'accuracy': 0.5, 'mcc': 0.5}
    monkeypatch.setattr(gf, 'finetune_run', fake_run)
    monkeypatch.setattr(gf, 'export_best_runs', lambda cfg, results: {})   # the fake runs hold no model
    with contextlib.redirect_stdout(io.StringIO()):
        finetune_sweep(replace(cfg, runs=1))
        assert done == [('rte', 0), ('cola', 0)]
        task_run_dir(cfg, 'cola', 1).mkdir(parents=True)  # an interrupted run: a folder without run.json or results line
        finetune_sweep(cfg)
    assert done == [('rte', 0), ('cola', 0), ('rte', 1), ('cola', 1)]

def test_bad_checkpoints(tmp_path):
    ckpt = electra_checkpoint(tmp_path/'ok')
    other = electra_checkpoint(tmp_path/'other', tokenizer=tiny_tokenizer(WORDS[:5]))
    no_tok = tmp_path/'no_tok'; ElectraForPreTraining.from_pretrained(ckpt).save_pretrained(no_tok)
    with pytest.raises(FileNotFoundError, match='has no tokenizer'): load_backbone(no_tok)
    mixed = tmp_path/'mixed'; ElectraForPreTraining.from_pretrained(ckpt).save_pretrained(mixed)
    for f in other.glob('*token*'): (mixed/f.name).write_bytes(f.read_bytes())
    with pytest.raises(ValueError, match='another tokenizer'): load_backbone(mixed)
    with pytest.raises(FileNotFoundError, match='--checkpoint'): load_backbone(tmp_path/'missing')

def test_deberta_discriminator(tmp_path):
    "A DeBERTa-v3 discriminator saved by the pretraining code fine-tunes through the same head and groups."
    from electra_gdes.model import build_rtd_model
    from electra_gdes.export import save_discriminator
    tok = tiny_tokenizer()
    pcfg = pretrain_config('deberta', 'tiny', hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, embedding_size=32)
    save_discriminator(build_rtd_model(pcfg, tok), tok, tmp_path/'deb')
    model, tokenizer = glue_classifier(tmp_path/'deb', 3)
    groups = layerwise_splitter(model)
    assert len(groups) == 4 and sum(map(len, groups)) == len(list(model.parameters()))
    ids = torch.tensor([tokenizer('the good', 'a bad')['input_ids']])
    assert model(ids, torch.ones_like(ids), torch.zeros_like(ids)).shape == (1, 3)

def test_finetune_beats_chance(tmp_path, practice):
    "A tiny end-to-end fine-tune on the practice SST-2 (sentiment words in the vocabulary) is far above chance (0.5)."
    cfg = FinetuneConfig(checkpoint=str(electra_checkpoint(tmp_path/'d')), glue_dir=str(practice), tasks=('sst2',),
                         lr=1e-3, epochs=5, batch_size=16, output_dir=str(tmp_path/'glue'))
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        metrics = finetune_run(cfg, 'sst2', 0)
    assert metrics['accuracy'] > 0.75, metrics
    [record] = read_results(results_path(cfg))
    assert record['score'] == metrics['accuracy'] and record['seed'] == 42 and record['synthetic']
    saved = json.loads((task_run_dir(cfg, 'sst2', 0)/'run.json').read_text())
    assert saved['metrics'] == metrics

def test_bf16_autocast_on_cpu(tmp_path):
    "--precision bf16 autocasts the forward pass on the model's device (fastai's MixedPrecision would only on CUDA)."
    from types import SimpleNamespace
    from fastai.basics import Callback
    from electra_gdes.glue_finetune import finetune_learner
    model, _ = glue_classifier(electra_checkpoint(tmp_path/'d', hidden=16), 2)
    x = torch.randint(5, 10, (4, 6)); ds = [(i, torch.ones_like(i), torch.zeros_like(i), torch.tensor(1)) for i in x]
    dl = torch.utils.data.DataLoader(ds, batch_size=2)
    class Spy(Callback):
        order = 5  # before the mixed-precision callback turns the output back to fp32
        def before_fit(self): self.dtypes = []
        def after_pred(self): self.dtypes.append(self.pred.dtype)
    cfg = FinetuneConfig(precision='bf16', epochs=1)
    learn = finetune_learner(cfg, SimpleNamespace(name='sst2', is_regression=False), model, dl, dl)
    spy = Spy(); learn.add_cb(spy)
    with learn.no_bar(), learn.no_logging(): learn.fit(1)
    assert spy.dtypes and set(spy.dtypes) == {torch.bfloat16}
    assert model.backbone.config._attn_implementation == CPU_ATTENTION   # on a CPU: eager attention, 31-bit-integer dropout masks

def test_sweep_trackers(tmp_path, monkeypatch, practice):
    "--log csv,tensorboard: every run's dev metrics at its run index, in <output_dir>/<group>/tensorboard, closed after the sweep."
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    monkeypatch.setattr(gf, 'finetune_run', lambda cfg, task, i, glue_task=None: {'accuracy': 0.75 - 0.25 * i, 'f1': 0.5})
    cfg = FinetuneConfig(checkpoint=str(electra_checkpoint(tmp_path/'d', hidden=16)), glue_dir=str(practice), tasks=('rte',), runs=2,
                         output_dir=str(tmp_path), group='tb', log='csv,tensorboard')
    closed = []
    real_close = gf.close_trackers
    monkeypatch.setattr(gf, 'close_trackers', lambda ts: (closed.extend(ts), real_close(ts)))
    with contextlib.redirect_stdout(io.StringIO()): finetune_sweep(cfg)
    acc = EventAccumulator(str(tmp_path/'tb'/'tensorboard')); acc.Reload()
    assert [(e.step, e.value) for e in acc.Scalars('glue/rte/accuracy')] == [(0, 0.75), (1, 0.5)]
    assert [type(t).__name__ for t in closed] == ['TensorBoardTracker']


# ---- gradient accumulation ---------------------------------------------------------------------------------------

def accum_setup(tmp_path, n=20):
    "A dropout-free tiny checkpoint (the same weights every time) and `n` SST-2-like examples."
    from datasets import Dataset
    torch.manual_seed(0)
    ckpt = tiny_electra_checkpoint(tmp_path/'nd', tiny_tokenizer(), embedding_size=16, hidden_size=32, num_hidden_layers=2,
                                   hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    ds = Dataset.from_dict({'idx': list(range(n)), 'sentence1': [' '.join([WORDS[8 + i % 8] if i % 2 else WORDS[16 + i % 8]] * (1 + i % 5))
                                                                  for i in range(n)],
                            'sentence2': [''] * n, 'label': [i % 2 for i in range(n)]},
                           features=glue_features(False))
    return ckpt, ds


def train_weights(ckpt, ds, accum, task='sst2', batch_size=8, epochs=1):
    from types import SimpleNamespace
    from fastai.basics import set_seed
    reg = task == 'stsb'
    if reg: ds = ds.cast(glue_features(True)).map(lambda r: {'label': float(r['idx'] % 5)})   # scores 0..4: MSE
    cfg = FinetuneConfig(lr=1e-3, epochs=epochs, batch_size=batch_size, grad_accum=accum, dropout=0.0)
    set_seed(0)
    model, tok = glue_classifier(ckpt, 1 if reg else 2, dropout=0.0)
    dl = gf.glue_train_dataloader(ds, tok, 32, batch_size, seed=0, grad_accum=accum)
    learn = gf.finetune_learner(cfg, SimpleNamespace(name=task, is_regression=reg), model, dl, dl)
    with learn.no_bar(), learn.no_logging(): learn.fit(epochs)
    sched = learn.layerwise_lr_scheduler
    return {k: v.detach().clone() for k, v in model.state_dict().items()}, sched, len(dl)


@pytest.mark.parametrize('task', ['sst2', 'stsb'])
def test_grad_accum_2_equals_1(tmp_path, task):
    "Dropout 0, 20 examples, global batch 8: grad_accum 2 (micro-batches 4,4 | 4,4 | 2,2) ends at grad_accum 1's weights (8 | 8 | 4)."
    ckpt, ds = accum_setup(tmp_path)
    w1, s1, n1 = train_weights(ckpt, ds, 1, task, epochs=2)
    w2, s2, n2 = train_weights(ckpt, ds, 2, task, epochs=2)
    assert (n1, n2) == (3, 3)                                                       # the loader's batches are the global ones
    assert (s1.total, s2.total) == (6, 6) and (s1.warmup, s2.warmup) == (1, 1)   # optimizer steps: 2 epochs x 3, 10% warmup
    np.testing.assert_allclose(np.array(s2.history), np.array(s1.history))       # the same lr at each of the 6 steps
    assert len(s2.history) == 6
    for k in w1: torch.testing.assert_close(w2[k], w1[k], rtol=1e-5, atol=1e-6, msg=lambda m: f'{k}: {m}')
    w4, _, n4 = train_weights(ckpt, ds, 4, task, epochs=2)                          # micro-batches of 2, the last step's 4 examples 1,1,1,1
    assert n4 == 3
    for k in w1: torch.testing.assert_close(w4[k], w1[k], rtol=1e-5, atol=1e-6)
    init = GlueClassifier(load_backbone(ckpt)[0], 2).state_dict()
    key = 'backbone.encoder.layer.0.output.dense.weight'
    assert not torch.allclose(init[key], w1[key])                                  # training moved the weights


def test_grad_accum_batch_must_split(tmp_path):
    ckpt, ds = accum_setup(tmp_path)
    _, tok = load_backbone(ckpt)
    with pytest.raises(ValueError, match='2 process\\(es\\) x 3 accumulated micro-batch\\(es\\): pass a multiple of 6'):
        gf.glue_train_dataloader(ds, tok, 32, 8, seed=0, world_size=2, grad_accum=3)


def test_recipe_wiring_is_readable(tmp_path):
    "finetune_learner's schedule (warmup = 10% of epochs x optimizer steps, one per batch whatever grad_accum), loss, weight decay; training_set doubles MRPC/STS-B only."
    from types import SimpleNamespace
    ckpt, ds = accum_setup(tmp_path)
    for task, reg, epochs in (('stsb', True, 10), ('rte', False, 10), ('sst2', False, 3)):
        for accum, steps in ((1, 20), (4, 20)):
            learn = gf.finetune_learner(FinetuneConfig(grad_accum=accum), SimpleNamespace(name=task, is_regression=reg),
                                        GlueClassifier(load_backbone(ckpt)[0], 1 if reg else 2), list(range(20)), None)
            s = learn.layerwise_lr_scheduler
            assert (s.total_steps, s.warmup_steps) == (epochs * steps, round(0.1 * epochs * steps))
            assert isinstance(learn.loss_func.func, torch.nn.MSELoss if reg else torch.nn.CrossEntropyLoss)
    learn.create_opt()
    assert {h['wd'] for h in learn.opt.hypers} == {0.0}
    assert [len(gf.training_set(t, ds)) for t in ('mrpc', 'stsb', 'cola', 'sst2', 'qqp', 'mnli', 'qnli', 'rte', 'wnli')] == [40, 40] + [20] * 7
