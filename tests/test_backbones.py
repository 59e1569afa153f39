"""From scratch in any architecture (issue 17, item 3): `electra-pretrain --backbone bert|roberta|modernbert` (ELECTRA's shapes
and recipe in that architecture) and `--backbone_config FILE`; GDES / ES / NES across them, the gradient paths, the exports
loading as the same model_type with every weight found, bad input refused before anything is written, resume refusing
another backbone."""
import contextlib, io, json, warnings
from pathlib import Path

import pytest, torch
import transformers
from transformers import AutoModel, AutoModelForMaskedLM, AutoModelForSequenceClassification, AutoTokenizer

from cli_helpers import script, tiny_corpus
from helpers import assert_gradient_paths
from electra_gdes.config import SCRATCH_MODEL_TYPES, pretrain_config
from electra_gdes.continued import scratch_config, scratch_rtd_model
from electra_gdes.encoders import SUPPORTED_ENCODERS, tiny_tokenizer

transformers.logging.set_verbosity_error()
TEXTS = (Path(__file__).parent/'fixtures'/'glue'/'corpus.txt').read_text().split('\n\n')
RUNS = {'bert': 'gdes', 'roberta': 'es', 'modernbert': 'nes'}   # each architecture under one mode, the three modes across them
TINY = ['--size', 'tiny', '--hidden_size', 32, '--num_heads', 2, '--intermediate_size', 64, '--num_layers', 2, '--max_length', 32,
        '--vocab_size', 300, '--batch_size', 4, '--steps', 3, '--warmup_steps', 1, '--log_every', 1, '--eval_every', 3,
        '--num_proc', 1, '--precision', 'fp32']

def tiny_cfg(backbone, mode, **kw):
    return pretrain_config(backbone, 'tiny', embedding_sharing=mode, **{**dict(hidden_size=32, num_heads=2, intermediate_size=64,
                           num_layers=2, max_length=32), **kw})

@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    """`electra-pretrain --backbone B` for a few steps, B in bert (GDES), roberta (ES), modernbert (NES); their run folders. The
    first as the installed command (its exit status), the others through the same `main` in this process (no second start-up)."""
    from electra_gdes.pretrain import main
    d = tmp_path_factory.mktemp('scratch')
    out = {}
    for i, (backbone, mode) in enumerate(RUNS.items()):
        args = ['--backbone', backbone, '--embedding_sharing', mode, *TINY, '--corpus', tiny_corpus(d), '--cache_dir', d/'cache',
                '--output_dir', d/'out', '--run_name', backbone]
        if i == 0:
            r = script('electra-pretrain', *args)
            assert r.returncode == 0, r.stderr[-2000:]
            stdout = r.stdout
        else:
            buf = io.StringIO()
            with contextlib.redirect_stdout(buf), warnings.catch_warnings():
                warnings.simplefilter('ignore')
                main([str(a) for a in args])
            stdout = buf.getvalue()
        out[backbone] = (d/'out'/backbone, stdout)
    return out

@pytest.mark.parametrize('backbone', RUNS)
def test_scratch_run_trains_and_exports_the_architecture(runs, backbone):
    "The run says how it built the model; the exports load as the same model_type, every weight found; the generator fills masks."
    run, stdout = runs[backbone]
    mode = RUNS[backbone]
    assert f"From scratch: {backbone} in the tiny preset's shape" in stdout
    assert ('as wide as the discriminator' in stdout) == (mode != 'nes')   # GDES / ES: the generator at the model's width
    saved = json.loads((run/'run_config.json').read_text())
    assert (saved['backbone'], saved['gen_width_ratio'], saved['gen_depth_ratio']) == ((backbone, 0.5, 1.0) if mode == 'nes' else (backbone, 1.0, 0.5))
    assert len((run/'log.csv').read_text().splitlines()) == 4   # a row per step
    enc, info = AutoModel.from_pretrained(run/'discriminator', output_loading_info=True)
    assert enc.config.model_type == backbone and not info['missing_keys'] and enc.config.hidden_size == 32
    clf, info = AutoModelForSequenceClassification.from_pretrained(run/'discriminator', num_labels=2, output_loading_info=True)
    assert clf.config.model_type == backbone
    assert info['missing_keys'] and all(not k.startswith(clf.base_model_prefix + '.') for k in info['missing_keys'])   # only the task head
    gen, info = AutoModelForMaskedLM.from_pretrained(run/'generator', output_loading_info=True)
    assert gen.config.model_type == backbone and not info['missing_keys']
    assert gen.config.hidden_size == (16 if mode == 'nes' else 32)
    tok = AutoTokenizer.from_pretrained(run/'generator')
    specials = {'bert': '[MASK]', 'roberta': '<mask>', 'modernbert': '[MASK]'}[backbone]   # the architecture's own kind of tokenizer
    assert tok.mask_token == specials
    fill = transformers.pipeline('fill-mask', model=str(run/'generator'), device='cpu')
    assert len(fill(f'the union is {tok.mask_token} and strong.', top_k=2)) == 2
    card = (run/'discriminator'/'README.md').read_text()
    assert f"A {dict(bert='BERT', roberta='RoBERTa', modernbert='ModernBERT')[backbone]}-tiny the discriminator" in card
    if mode == 'gdes':   # the export holds E_G + E_delta: the discriminator's table is the generator's plus what RTD taught it
        assert not torch.equal(enc.get_input_embeddings().weight, gen.get_input_embeddings().weight)
    if mode == 'es':
        torch.testing.assert_close(enc.get_input_embeddings().weight, gen.get_input_embeddings().weight)

def test_resume_refuses_another_backbone(runs):
    "`--resume --backbone roberta` on a BERT run: refused, nothing changed (exit 1, the fixed field named)."
    from electra_gdes.pretrain import main
    run, _ = runs['bert']
    before = (run/'run_config.json').read_text()
    err = io.StringIO()
    with pytest.raises(SystemExit) as e, contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        main(['--resume', '--backbone', 'roberta', '--output_dir', str(run.parent), '--run_name', 'bert'])
    assert e.value.code == 1 and "backbone 'bert' -> 'roberta' (cannot change: the checkpoints depend on it)" in err.getvalue()
    assert (run/'run_config.json').read_text() == before

def test_resume_and_export_of_a_scratch_run(runs, tmp_path):
    "A RoBERTa run from scratch resumes (its model rebuilt from the saved settings, the checkpoint loaded), and `electra-export` rebuilds it."
    from electra_gdes.export import export_checkpoint
    from electra_gdes.pretrain import main
    import shutil
    run = Path(shutil.copytree(runs['roberta'][0], tmp_path/'out'/'roberta'))   # a copy: the other tests read the original
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter('ignore')
        main(['--resume', '--output_dir', str(run.parent), '--run_name', 'roberta', '--steps', '4', '--allow_change', 'steps'])
    assert [int(r.split(',')[0]) for r in (run/'log.csv').read_text().splitlines()[1:]] == [1, 2, 3, 4]
    with contextlib.redirect_stdout(io.StringIO()): out = export_checkpoint(run, tmp_path/'exported')
    a, b = AutoModel.from_pretrained(out/'discriminator'), AutoModel.from_pretrained(run/'discriminator')
    assert a.config.model_type == 'roberta'
    for (k, v), (k2, v2) in zip(a.state_dict().items(), b.state_dict().items()): assert k == k2 and torch.equal(v, v2), k

def test_modernbert_from_scratch_on_a_cpu_without_flash_attn():
    "A ModernBERT built from scratch runs eager, SDPA and the kit's `cpu` attention on a CPU, with the same outputs in eval mode."
    from electra_gdes.model import CPU_ATTENTION, SDPA_ATTENTION, set_attention
    tok = tiny_tokenizer('modernbert', TEXTS)
    model = scratch_rtd_model(scratch_config(tiny_cfg('modernbert', 'gdes'), verbose=False), tok, verbose=False)
    enc = tok(TEXTS[:2], truncation=True, max_length=32, padding=True, return_tensors='pt')
    outs = {}
    for impl in ('eager', SDPA_ATTENTION, CPU_ATTENTION):
        set_attention(model, impl).eval()
        assert model.discriminator.config._attn_implementation == impl
        with torch.no_grad(): outs[impl] = model.discriminator(enc['input_ids'], attention_mask=enc['attention_mask']).logits
    torch.testing.assert_close(outs[SDPA_ATTENTION], outs['eager']); torch.testing.assert_close(outs[CPU_ATTENTION], outs['eager'])

@pytest.mark.parametrize('mode', ('gdes', 'es', 'nes'))
@pytest.mark.parametrize('backbone', RUNS)
def test_gradient_paths_from_scratch(backbone, mode):
    "The same gradient paths as continued runs: GDES's RTD reaches E_delta only, ES shares every table, NES none."
    tok = tiny_tokenizer(backbone, TEXTS)
    cfg = scratch_config(tiny_cfg(backbone, mode), verbose=False)
    assert_gradient_paths(scratch_rtd_model(cfg, tok, verbose=False), tok, mode, TEXTS)

def test_backbone_config_file(tmp_path):
    "`--backbone_config` builds the file's architecture in the file's shape (a ModernBERT with its own layout), the recipe of the preset."
    from electra_gdes.pretrain import run_pretraining
    transformers.ModernBertConfig(hidden_size=48, num_hidden_layers=3, num_attention_heads=3, intermediate_size=96, global_attn_every_n_layers=2,
                                  local_attention=16, max_position_embeddings=64).save_pretrained(tmp_path/'mine')
    cfg = pretrain_config('electra', 'tiny', backbone_config=str(tmp_path/'mine'/'config.json'), corpus=str(tiny_corpus(tmp_path)),
                          cache_dir=str(tmp_path/'cache'), output_dir=str(tmp_path/'out'), max_length=32, batch_size=4, steps=2,
                          warmup_steps=1, eval_every=2, log_every=1, checkpoint_fractions=(1.0,), num_proc=1, precision='fp32')
    assert cfg.run_name == 'mine-tiny-gdes'
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), warnings.catch_warnings():
        warnings.simplefilter('ignore')
        run = run_pretraining(cfg)
    assert 'the architecture and shape of' in buf.getvalue() and 'hidden_size 48 (preset 128)' in buf.getvalue()
    saved = json.loads((run/'run_config.json').read_text())
    assert (saved['hidden_size'], saved['num_layers'], saved['tokenizer'], saved['gen_width_ratio']) == (48, 3, 'bert-uncased', 1.0)
    enc, info = AutoModel.from_pretrained(run/'discriminator', output_loading_info=True)
    assert not info['missing_keys'] and enc.config.model_type == 'modernbert'
    assert (enc.config.hidden_size, enc.config.num_hidden_layers, enc.config.local_attention, enc.config.vocab_size) == (48, 3, 16, 30522)
    assert enc.config.layer_types == ['full_attention', 'sliding_attention', 'full_attention']
    card = (run/'discriminator'/'README.md').read_text()
    assert 'A ModernBERT-tiny the discriminator' in card and f"| architecture | `{cfg.backbone_config}` (modernbert), from scratch |" in card
    gen = AutoModelForMaskedLM.from_pretrained(run/'generator')
    assert gen.config.num_hidden_layers == 2 and gen.config.layer_types == ['full_attention', 'sliding_attention']   # half (rounded) of 3

def test_a_backbone_config_run_keeps_its_architecture(tmp_path):
    """The run keeps a copy of its --backbone_config: after the file has moved the run still exports and resumes in its
    architecture; a file changed since is refused on resume (exit 1, nothing changed)."""
    from electra_gdes.export import export_checkpoint
    from electra_gdes.pretrain import main
    transformers.BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                            max_position_embeddings=64).save_pretrained(tmp_path/'arch')
    args = ['--backbone', 'bert', '--backbone_config', tmp_path/'arch', *TINY[TINY.index('--max_length'):], '--corpus', tiny_corpus(tmp_path),
            '--cache_dir', tmp_path/'cache', '--output_dir', tmp_path/'out', '--checkpoint_fractions', '1.0']
    def run(*more):
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter('ignore')
            main([str(a) for a in [*args, *more]])
    run()
    out = tmp_path/'out'/'arch-tiny-gdes'
    assert json.loads((out/'backbone_config.json').read_text()) == json.loads((tmp_path/'arch'/'config.json').read_text())
    (tmp_path/'arch').rename(tmp_path/'moved')
    with contextlib.redirect_stdout(io.StringIO()): exported = export_checkpoint(out, tmp_path/'exported')
    assert AutoModel.from_pretrained(exported/'discriminator').config.hidden_size == 32
    run('--resume', '--steps', '4', '--allow_change', 'steps')
    assert [int(r.split(',')[0]) for r in (out/'log.csv').read_text().splitlines()[1:]][-1] == 4
    transformers.BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, max_position_embeddings=64,
                            hidden_act='relu').save_pretrained(tmp_path/'arch')   # the same shape, another activation
    before = sorted((p.name, p.stat().st_mtime_ns) for p in out.rglob('*'))
    err = io.StringIO()
    with pytest.raises(SystemExit) as e, contextlib.redirect_stderr(err): run('--resume', '--steps', '5', '--allow_change', 'steps')
    assert e.value.code == 1 and 'is no longer the architecture the run started with' in err.getvalue()
    assert sorted((p.name, p.stat().st_mtime_ns) for p in out.rglob('*')) == before

@pytest.mark.parametrize('model_type,preset', [('electra', 'electra'), ('deberta-v2', 'deberta'), ('xlm-roberta', 'electra')])
def test_backbone_config_of_every_known_architecture(tmp_path, model_type, preset):
    "Any config of an architecture the kit knows builds and steps: ELECTRA's own classes (a narrower generator sharing its tables), DeBERTa with EMD."
    from electra_gdes.rtd import RTDLoss, mask_tokens, masking_excluded_ids
    tok = tiny_tokenizer('bert', TEXTS)
    shape = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    extra = {'electra': dict(embedding_size=16), 'deberta-v2': dict(relative_attention=True, position_biased_input=False, pos_att_type=['p2c', 'c2p'],
                                                                   position_buckets=16, type_vocab_size=0)}.get(model_type, {})
    transformers.AutoConfig.for_model(model_type, **shape, **extra).save_pretrained(tmp_path)
    cfg = scratch_config(pretrain_config(preset, 'tiny', backbone_config=str(tmp_path), max_length=32, embedding_size=32), verbose=False)
    model = scratch_rtd_model(cfg, tok, verbose=False)
    assert model.discriminator.config.model_type == model_type and model.discriminator.config.vocab_size == len(tok)
    assert type(model.discriminator).__name__ == {'electra': 'ElectraForPreTraining'}.get(model_type, model.discriminator.__class__.__name__)
    assert type(model.generator).__name__ == {'deberta-v2': 'DebertaV2ForMaskedLMWithEMD'}.get(model_type, type(model.generator).__name__)
    if model_type == 'electra': assert model.generator.config.hidden_size == 16   # ELECTRA's factorised tables: the preset's narrower generator
    enc = tok(TEXTS[:4], TEXTS[1:5], truncation=True, max_length=32, padding=True, return_tensors='pt')
    ids, attn = enc['input_ids'], enc['attention_mask']
    masked, is_masked = mask_tokens(ids, attn, masking_excluded_ids(tok), tok.mask_token_id, len(tok), 0.15, generator=torch.Generator().manual_seed(0))
    mlm, disc = RTDLoss.terms(model(masked, attn, enc['token_type_ids'], is_masked), ids, attn)
    assert torch.isfinite(mlm + disc)

def test_bad_input_is_refused_before_anything_is_written(tmp_path):
    "An unknown backbone, a size it lacks, a missing or wrong --backbone_config: exit 2, one line naming the fix, no folder made."
    (tmp_path/'gpt2.json').write_text(json.dumps({'model_type': 'gpt2', 'n_embd': 8}))
    out = tmp_path/'out'
    for args, msg in [(['--backbone', 'gpt2'], "invalid choice: 'gpt2'"),
                      (['--backbone', 'bert', '--size', 'large'], "size='large' is not one of 'tiny', 'small', 'base'"),
                      (['--backbone_config', tmp_path/'missing.json'], 'no such file'),
                      (['--backbone_config', tmp_path/'gpt2.json'], "is a 'gpt2' config; RTD from scratch builds an encoder"),
                      (['--backbone_config', tmp_path/'gpt2.json', '--init_discriminator', tmp_path], 'not both')]:
        r = script('electra-pretrain', *args, '--output_dir', out, cwd=tmp_path)
        assert r.returncode == 2 and msg in r.stderr and 'Traceback' not in r.stderr, (args, r.stderr[-800:])
    assert not out.exists()

def test_known_architectures_agree():
    "The config's list of --backbone_config architectures (checked without torch) is the encoders' list."
    assert set(SCRATCH_MODEL_TYPES) == set(SUPPORTED_ENCODERS)
