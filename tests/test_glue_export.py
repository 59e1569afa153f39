"Fine-tuned GLUE runs exported for transformers: AutoModelForSequenceClassification and pipeline load them (offline), with the kit's outputs."
import contextlib, errno, io, json, os
from pathlib import Path

import pytest, torch
from transformers import AutoModelForSequenceClassification, pipeline

import helpers
import electra_gdes.glue_finetune as gf
from electra_gdes.config import FinetuneConfig, pretrain_config
from electra_gdes.glue_data import glue_spec
from electra_gdes.export import export_glue_run
from electra_gdes.glue_model import GlueClassifier, load_backbone, load_run, save_run
from electra_gdes.glue_finetune import append_result, best_dir, export_best_runs, task_run_dir, results_path

WORDS = ('the', 'a', 'movie', 'was', 'good', 'bad', 'great', 'awful', 'man', 'sleeps', 'is', 'asleep')
TEXTS = [('the movie was good', None), ('a bad , awful movie', None), ('the man sleeps', 'a man is asleep')]


def electra_ckpt(d):
    torch.manual_seed(0)
    return helpers.tiny_electra_checkpoint(d/'electra', helpers.tiny_tokenizer(WORDS))


def deberta_ckpt(d):
    from electra_gdes.model import build_rtd_model
    from electra_gdes.export import save_discriminator
    torch.manual_seed(0)
    tok = helpers.tiny_tokenizer(WORDS)
    pcfg = pretrain_config('deberta', 'tiny', hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, embedding_size=32)
    save_discriminator(build_rtd_model(pcfg, tok), tok, d/'deberta')
    return d/'deberta'


def fake_run(ckpt, path, task, run=0, seed=42, score=0.5):
    "A 'fine-tuned' run: the checkpoint's encoder with a random head (and random encoder noise), saved as the sweep saves it."
    spec = glue_spec(task)
    backbone, tok = load_backbone(ckpt)
    torch.manual_seed(seed)
    model = GlueClassifier(backbone, spec.num_labels)
    with torch.no_grad():
        for p in model.parameters(): p.add_(0.01 * torch.randn_like(p))
    save_run(model, tok, Path(path), dict(task=task, run=run, seed=seed, score=score, metrics={'accuracy': score}, synthetic=True,
                                          checkpoint=str(ckpt), num_labels=spec.num_labels))
    return Path(path)


def kit_outputs(run_path, texts):
    model, tok, _ = load_run(run_path)
    x = tok([a for a, _ in texts], [b or '' for _, b in texts], padding=True, return_tensors='pt') if any(b for _, b in texts) else \
        tok([a for a, _ in texts], padding=True, return_tensors='pt')
    with torch.no_grad(): return model(x['input_ids'], x['attention_mask'], x['token_type_ids']), x


@pytest.mark.parametrize('backbone', ['electra', 'deberta'])
@pytest.mark.parametrize('task', ['mnli', 'stsb'])
def test_both_loaders_give_the_kit_outputs(tmp_path, backbone, task):
    ckpt = (electra_ckpt if backbone == 'electra' else deberta_ckpt)(tmp_path)
    run = fake_run(ckpt, tmp_path/'glue'/f'{task}_0', task)
    out = export_glue_run(run, tmp_path/'export')
    spec = glue_spec(task)
    config = json.loads((out/'config.json').read_text())
    assert config['id2label'] == {str(i): n for i, n in enumerate(spec.label_names)}
    assert config['label2id'] == {n: i for i, n in enumerate(spec.label_names)}
    assert config['auto_map']['AutoModelForSequenceClassification'].startswith('modeling_glue_classifier.')
    assert config['problem_type'] == ('regression' if task == 'stsb' else 'single_label_classification')
    assert not any('attn_implementation' in k for k in config)
    assert {'README.md', 'export.json', 'modeling_glue_classifier.py', 'model.safetensors', 'tokenizer.json'} <= set(os.listdir(out))
    assert not [p for p in os.listdir(tmp_path) if p.endswith('.tmp')]

    texts = [t for t in TEXTS if t[1]] if spec.hf_columns[1] else [t for t in TEXTS if not t[1]]
    want, x = kit_outputs(run, texts)
    hf = AutoModelForSequenceClassification.from_pretrained(out, trust_remote_code=True).eval()
    assert type(hf).__name__ == ('ElectraGlueClassifier' if backbone == 'electra' else 'DebertaV2GlueClassifier')
    with torch.no_grad(): logits = hf(**x).logits
    torch.testing.assert_close(logits.squeeze(-1) if task == 'stsb' else logits, want, rtol=1e-5, atol=1e-6)

    clf = pipeline('text-classification', model=str(out), trust_remote_code=True)
    got = clf([{'text': a, 'text_pair': b} for a, b in texts])
    if task == 'stsb':   # regression: the raw score, no sigmoid
        assert [g['label'] for g in got] == ['score'] * len(texts)
        assert [g['score'] for g in got] == pytest.approx(want.tolist(), abs=1e-5)
    else:
        assert [g['label'] for g in got] == [spec.label_names[i] for i in want.argmax(-1).tolist()]
        assert [g['score'] for g in got] == pytest.approx(want.softmax(-1).max(-1).values.tolist(), abs=1e-5)


def test_the_head_is_the_kits_not_hfs(tmp_path):
    "The exported model's head is dropout + one linear layer on [CLS] (no dense + GELU, no pooler)."
    run = fake_run(electra_ckpt(tmp_path), tmp_path/'rte_0', 'rte')
    hf = AutoModelForSequenceClassification.from_pretrained(export_glue_run(run, tmp_path/'x'), trust_remote_code=True)
    head_params = {n for n, _ in hf.named_parameters() if not n.startswith('backbone.')}
    assert head_params == {'head.weight', 'head.bias'}
    kit, _, _ = load_run(run)
    assert set(hf.state_dict()) == set(kit.state_dict())


def test_sweep_exports_the_best_run_once(tmp_path, capsys):
    ckpt = electra_ckpt(tmp_path)
    cfg = FinetuneConfig(checkpoint=str(ckpt), tasks=('rte', 'cola'), output_dir=str(tmp_path/'glue'), group='g')
    for i, score in enumerate([0.55, 0.70, 0.62]):
        fake_run(ckpt, task_run_dir(cfg, 'rte', i), 'rte', run=i, seed=42 + i, score=score)
        append_result(results_path(cfg), dict(task='rte', run=i, seed=42 + i, score=score, synthetic=True))
    results = gf.read_results(results_path(cfg))
    paths = export_best_runs(cfg, results)
    assert paths == {'rte': tmp_path/'glue'/'g'/'rte_best'} and best_dir(cfg, 'rte') == paths['rte']   # cola: no runs, no export
    assert json.loads((paths['rte']/'export.json').read_text())['run'] == 1
    mtime = (paths['rte']/'model.safetensors').stat().st_mtime_ns
    export_best_runs(cfg, results)
    assert (paths['rte']/'model.safetensors').stat().st_mtime_ns == mtime          # the same best run: not written again
    fake_run(ckpt, task_run_dir(cfg, 'rte', 3), 'rte', run=3, seed=45, score=0.9)
    append_result(results_path(cfg), dict(task='rte', run=3, seed=45, score=0.9, synthetic=True))
    export_best_runs(cfg, gf.read_results(results_path(cfg)))
    assert json.loads((paths['rte']/'export.json').read_text())['run'] == 3
    assert sorted(p.name for p in (tmp_path/'glue'/'g').iterdir() if p.name.startswith('.')) == []


def test_failed_export_keeps_the_earlier_one(tmp_path, monkeypatch):
    ckpt = electra_ckpt(tmp_path)
    run = fake_run(ckpt, tmp_path/'glue'/'rte_0', 'rte')
    out = export_glue_run(run, tmp_path/'glue'/'rte_best')
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    def full(*a, **k): raise OSError(errno.ENOSPC, 'No space left on device')
    monkeypatch.setattr(type(load_run(run)[1]), 'save_pretrained', full)
    with pytest.raises(OSError, match=f'Could not write {out}: No space left on device; the disk is full'): export_glue_run(run, out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(os.listdir(tmp_path/'glue')) == ['rte_0', 'rte_best']
