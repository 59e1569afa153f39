"""Continued RTD from any encoder (issue 17): tiny random BERT, RoBERTa, XLM-R and ModernBERT checkpoints (ELECTRA and DeBERTa too) with their own tokenizers,
built offline; tokens by role, the run's shape from the checkpoint, step 0 equal to the released model, the gradient paths
of GDES / ES / NES per architecture, a few continued steps under each, the exports loading (and filling masks), and
GLUE fine-tuning from each export on the offline practice suite."""
import contextlib, io, json, os, subprocess, sys, warnings
from pathlib import Path

import pytest, torch
torch.set_num_threads(1)   # tiny models: one thread is faster, and the tests share the CPU
import transformers
from transformers import AutoModel, AutoModelForMaskedLM, AutoModelForSequenceClassification, AutoModelForTokenClassification, AutoTokenizer

from electra_gdes.config import FinetuneConfig, pretrain_config
from electra_gdes.continued import EncoderRTDModel, continued_config, continued_rtd_model
from electra_gdes.data import REQUIRED_SPECIAL_TOKENS, build_examples, check_special_tokens, role_token_id
from electra_gdes.encoders import discriminator_class, embedding_module, tiny_checkpoint
from electra_gdes.model import GDESEmbedding, gdes_merged
from electra_gdes.rtd import RTDLoss, mask_tokens, masking_excluded_ids
from helpers import assert_gradient_paths

transformers.logging.set_verbosity_error()
ARCHS = ('bert', 'roberta', 'xlm-roberta', 'modernbert')
ALL_ARCHS = ARCHS + ('electra', 'deberta-v2')   # the two families the kit began with, continued from a discriminator alone too
MODES = ('gdes', 'es', 'nes')
ROOT = Path(__file__).parents[1]
TEXTS = (ROOT/'tests'/'fixtures'/'glue'/'corpus.txt').read_text().split('\n\n')
ROLES = {'bert': ('[CLS]', '[SEP]', '[MASK]', '[PAD]'), 'roberta': ('<s>', '</s>', '<mask>', '<pad>'), 'xlm-roberta': ('<s>', '</s>', '<mask>', '<pad>'),
         'modernbert': ('[CLS]', '[SEP]', '[MASK]', '[PAD]')}

@pytest.fixture(scope='module')
def released(tmp_path_factory):
    "A tiny random 'released' checkpoint of each architecture (2 layers, 32 wide, 64 positions) with its own tokenizer."
    d = tmp_path_factory.mktemp('released')
    return {a: tiny_checkpoint(a, d/a, TEXTS, seed=1, hidden_size=32, num_layers=2, max_length=64) for a in ALL_ARCHS}

@pytest.fixture(scope='module')
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp('corpus')/'corpus.txt'
    path.write_text('\n\n'.join(TEXTS * 6))
    return path

def cfg_for(path, mode='gdes', **kw):
    return pretrain_config('electra', 'tiny', init_discriminator=str(path), embedding_sharing=mode, **{'max_length': 32, **kw})

def batch(tok, n=4):
    enc = tok(TEXTS[:n], TEXTS[1:n + 1], truncation=True, max_length=32, padding=True, return_tensors='pt')
    return enc['input_ids'], enc['attention_mask'], enc.get('token_type_ids', torch.zeros_like(enc['input_ids']))

# --- tokens by role ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize('arch', ARCHS)
def test_tokens_by_role_masking_and_builders(released, arch):
    "Special tokens come from the tokenizer's attributes; masking never picks one; the example builders open and close with them."
    tok = check_special_tokens(AutoTokenizer.from_pretrained(released[arch]))
    ids = [role_token_id(tok, r) for r in REQUIRED_SPECIAL_TOKENS]
    assert tok.convert_ids_to_tokens(ids) == list(ROLES[arch])
    ids_, attn, _ = batch(tok)
    specials = torch.tensor(tok.all_special_ids)
    hits = 0
    for seed in range(20):
        masked, is_masked = mask_tokens(ids_, attn, masking_excluded_ids(tok, mask_unk=False), tok.mask_token_id, len(tok), 0.5,
                                        generator=torch.Generator().manual_seed(seed))
        assert not (is_masked & torch.isin(ids_, specials)).any()
        assert not (is_masked & ~attn.bool()).any()
        hits += int(is_masked.sum())
    assert hits > 0
    import datasets
    for builder in ('electra', 'deberta'):
        ex = build_examples(datasets.Dataset.from_dict({'text': TEXTS}), tok, builder, max_length=32, seed=0)
        for row in ex:
            assert row['input_ids'][0] == role_token_id(tok, 'cls_token') and row['input_ids'][-1] == role_token_id(tok, 'sep_token')
            assert len(row['input_ids']) <= 32

def test_bos_eos_stand_in_for_cls_sep():
    "A tokenizer with bos/eos but no cls/sep opens and closes its examples with them."
    from electra_gdes.encoders import tiny_tokenizer
    tok = tiny_tokenizer('roberta', TEXTS)
    tok.cls_token = tok.sep_token = None
    assert role_token_id(tok, 'cls_token') == tok.bos_token_id and role_token_id(tok, 'sep_token') == tok.eos_token_id
    check_special_tokens(tok)
    tok.bos_token = None
    with pytest.raises(ValueError, match='cls_token'): check_special_tokens(tok)

# --- the run's settings from the checkpoint ---------------------------------------------------------------------

@pytest.mark.parametrize('arch', ARCHS)
def test_continued_config_from_checkpoint(released, arch, capsys):
    cfg = continued_config(cfg_for(released[arch]))
    c = transformers.AutoConfig.from_pretrained(released[arch])
    assert (cfg.hidden_size, cfg.num_layers, cfg.num_heads, cfg.intermediate_size, cfg.vocab_size) == \
           (c.hidden_size, c.num_hidden_layers, c.num_attention_heads, c.intermediate_size, c.vocab_size) == (32, 2, 2, 64, c.vocab_size)
    assert cfg.tokenizer == str(released[arch]) and cfg.max_position_embeddings == 64   # RoBERTa: 66 rows less pad + 1
    assert (cfg.gen_width_ratio, cfg.gen_depth_ratio) == (1.0, 0.5)   # GDES needs the discriminator's width
    assert (cfg.lr, cfg.steps) == (5e-5, 100_000)   # DeBERTaV3's continued training
    out = capsys.readouterr().out
    assert 'come from the checkpoint, not the preset' in out and 'hidden_size 32 (preset 128)' in out
    nes = continued_config(cfg_for(released[arch], 'nes'))
    assert (nes.gen_width_ratio, nes.gen_depth_ratio) == (0.5, 1.0)   # the preset's narrower generator
    with pytest.raises(ValueError, match='pass --max_length 64 or less'): continued_config(cfg_for(released[arch], max_length=65))

def test_continued_config_refusals(released, tmp_path):
    (tmp_path/'bare').mkdir()
    AutoModel.from_pretrained(released['bert']).save_pretrained(tmp_path/'bare')   # weights, no tokenizer
    with pytest.raises(ValueError, match='no tokenizer'): continued_config(cfg_for(tmp_path/'bare'))
    with pytest.raises(ValueError, match='cannot read its config.json'): continued_config(cfg_for(tmp_path/'nothing'))
    transformers.GPT2Config(n_layer=1, n_embd=8, n_head=2).save_pretrained(tmp_path/'gpt2')
    with pytest.raises(ValueError, match="'gpt2' model; RTD pretraining knows bert"): continued_config(cfg_for(tmp_path/'gpt2'))
    from electra_gdes.pretrain import init_model
    with pytest.raises(ValueError, match='--init_generator needs --init_discriminator'):
        init_model(pretrain_config('electra', 'tiny', init_generator='g'), None)

# --- step 0 and the gradient paths -------------------------------------------------------------------------------

@pytest.mark.parametrize('mode', MODES)
@pytest.mark.parametrize('arch', ALL_ARCHS)
def test_step0_is_the_released_model(released, arch, mode):
    "At step 0 the discriminator's encoder computes exactly what the released one does; GDES's E_delta is 0 there."
    cfg = continued_config(cfg_for(released[arch], mode), verbose=False)
    model = continued_rtd_model(cfg, verbose=False).eval()
    ref = AutoModel.from_pretrained(released[arch]).eval()
    tok = AutoTokenizer.from_pretrained(released[arch])
    ids, attn, _ = batch(tok)
    with torch.no_grad():
        torch.testing.assert_close(model.discriminator.base_model(ids, attention_mask=attn).last_hidden_state,
                                   ref(ids, attention_mask=attn).last_hidden_state)
    word = model.discriminator.get_input_embeddings()
    if mode == 'gdes': assert isinstance(word, GDESEmbedding) and word.delta.abs().max() == 0
    gen = model.generator
    assert gen.config.model_type == arch
    assert type(model.discriminator).__name__ == {'electra': 'ElectraForPreTraining'}.get(arch, f'{type(ref).__name__[:-5]}ForReplacedTokenDetection')
    if arch == 'electra' or (arch == 'deberta-v2' and mode == 'nes'):   # embedding_size-wide tables: the narrower generator's are the same
        assert (gen.config.hidden_size, gen.config.num_hidden_layers) == (16, 2)
        torch.testing.assert_close(gen.get_input_embeddings().weight, ref.get_input_embeddings().weight, rtol=0, atol=0)
    elif mode == 'nes':   # the preset's narrower generator, tables projected onto the word table's top principal directions
        assert gen.config.hidden_size == 16 and gen.config.num_hidden_layers == 2
        e_d, e_g = ref.get_input_embeddings().weight, gen.get_input_embeddings().weight
        v = torch.linalg.svd(e_d, full_matrices=False).Vh[:16].T
        torch.testing.assert_close(e_g, e_d @ v)
    else:               # as wide as the discriminator, half its layers, the checkpoint's MLM head
        assert gen.config.hidden_size == 32 and gen.config.num_hidden_layers == 1
        full = AutoModelForMaskedLM.from_pretrained(released[arch])
        head = {k: v for k, v in full.state_dict().items() if not k.startswith(full.base_model_prefix + '.')}
        got = gen.state_dict()
        assert head and all(torch.equal(got[k], v) for k, v in head.items())

@pytest.mark.parametrize('mode', MODES)
@pytest.mark.parametrize('arch', ALL_ARCHS)
def test_gradient_paths(released, arch, mode):
    "MLM reaches E_G, never the discriminator; RTD reaches E_delta only under GDES (not E_G), the one table under ES, its own under NES."
    cfg = continued_config(cfg_for(released[arch], mode), verbose=False)
    assert_gradient_paths(continued_rtd_model(cfg, verbose=False), AutoTokenizer.from_pretrained(released[arch]), mode, TEXTS)

# --- continued runs, exports, fine-tuning ------------------------------------------------------------------------

@pytest.fixture(scope='module')
def runs(released, corpus, tmp_path_factory):
    "A few continued RTD steps from each checkpoint under GDES, ES and NES (run_pretraining, fp32, CPU attention)."
    from electra_gdes.pretrain import run_pretraining
    out, done, logs = tmp_path_factory.mktemp('runs'), {}, {}
    for arch in ARCHS:
        for mode in MODES:
            cfg = cfg_for(released[arch], mode, corpus=str(corpus), cache_dir=str(out/'cache'), output_dir=str(out),
                          run_name=f'{arch}-{mode}', steps=4, lr=1e-3, warmup_steps=1, batch_size=4, eval_every=4, log_every=1,
                          checkpoint_fractions=(), num_proc=1, precision='fp32')
            buf = io.StringIO()
            with contextlib.redirect_stdout(buf), warnings.catch_warnings():
                warnings.simplefilter('ignore')
                done[arch, mode] = run_pretraining(cfg)
            logs[arch, mode] = buf.getvalue()
    return done, logs

@pytest.mark.parametrize('arch', ARCHS)
def test_continued_runs_train_and_log(runs, arch):
    done, logs = runs
    for mode in MODES:
        run = done[arch, mode]
        saved = json.loads((run/'run_config.json').read_text())
        assert saved['hidden_size'] == 32 and saved['tokenizer'].endswith(arch)
        rows = (run/'log.csv').read_text().splitlines()
        assert len(rows) >= 2
        assert f'({arch}): shape, vocabulary and tokenizer come from the checkpoint' in logs[arch, mode]
        assert 'Discriminator:' in logs[arch, mode] and 'Generator:' in logs[arch, mode]
    assert '= 0: the discriminator starts as the released model' in logs[arch, 'gdes']

@pytest.mark.parametrize('mode', MODES)
@pytest.mark.parametrize('arch', ARCHS)
def test_exports_load_with_every_weight(runs, released, arch, mode):
    "The discriminator is a plain `arch` encoder (every encoder weight found, GDES merged, trained away from the release); the generator fills masks."
    done, _ = runs
    disc_dir, gen_dir = done[arch, mode]/'discriminator', done[arch, mode]/'generator'
    enc, info = AutoModel.from_pretrained(disc_dir, output_loading_info=True)
    assert enc.config.model_type == arch and not info['missing_keys']
    ref = AutoModel.from_pretrained(released[arch])
    assert not torch.equal(enc.get_input_embeddings().weight, ref.get_input_embeddings().weight)   # 4 steps at lr 1e-3 moved it
    for cls in (AutoModelForSequenceClassification, AutoModelForTokenClassification):
        m, info = cls.from_pretrained(disc_dir, num_labels=2, output_loading_info=True)
        assert m.config.model_type == arch
        assert all(not k.startswith(m.base_model_prefix + '.') for k in info['missing_keys']), info['missing_keys']   # only the new task head
    gen, info = AutoModelForMaskedLM.from_pretrained(gen_dir, output_loading_info=True)
    assert not info['missing_keys'] and gen.config.model_type == arch
    tok = AutoTokenizer.from_pretrained(gen_dir)
    fill = transformers.pipeline('fill-mask', model=str(gen_dir), tokenizer=str(gen_dir), device='cpu')
    answers = fill(f'the river runs past the old {tok.mask_token} and turns slowly.', top_k=3)
    assert len(answers) == 3 and all(a['token'] < len(tok) or a['token'] < gen.config.vocab_size for a in answers)
    card = (disc_dir/'README.md').read_text()
    assert f'continued from | `{released[arch]}` ({arch})' in card and 'AutoModel' in card

def test_gdes_export_is_the_merged_table(runs, released):
    "The saved discriminator table is E_G + E_delta of the trained run, as `gdes_merged` builds it."
    from electra_gdes.checkpoint import read_checkpoint
    done, _ = runs
    enc = AutoModel.from_pretrained(done['bert', 'gdes']/'discriminator')
    gen = AutoModelForMaskedLM.from_pretrained(done['bert', 'gdes']/'generator')
    delta = enc.get_input_embeddings().weight - gen.get_input_embeddings().weight
    assert delta.abs().max() > 0   # the discriminator's own part, trained by RTD alone

@pytest.fixture(scope='module')
def practice(tmp_path_factory):
    from electra_gdes.glue_data import make_practice_glue
    warnings.filterwarnings('ignore', message='.*SYNTHETIC.*')
    return make_practice_glue(tmp_path_factory.mktemp('glue')/'practice', TEXTS, n_train=96, n_dev=48, n_test=16)

@pytest.mark.parametrize('arch', ARCHS)
def test_glue_from_each_export(runs, practice, arch, tmp_path):
    "`--size auto` reads the export's shape; layer-wise decay finds its layers; one pair task fine-tunes, exports and classifies."
    from electra_gdes.glue_finetune import finetune_run, task_run_dir
    from electra_gdes.glue_model import glue_classifier, layerwise_splitter, param_depth
    from electra_gdes.export import export_glue_run
    done, _ = runs
    disc = done[arch, 'gdes']/'discriminator'
    cfg = FinetuneConfig(checkpoint=str(disc), glue_dir=str(practice), tasks=('rte',), runs=1, epochs=1, batch_size=16,
                         max_length=32, output_dir=str(tmp_path/'glue'))
    assert (cfg.size, cfg.lr, cfg.layer_decay) == ('small', 3e-4, 0.8)   # auto: 32 wide, 2 layers
    model, tok = glue_classifier(disc, 2)
    groups = layerwise_splitter(model)
    assert len(groups) == 2 + 2 and all(groups) and sum(map(len, groups)) == len(list(model.parameters()))
    n = {name: param_depth(name, 2) for name, _ in model.backbone.named_parameters()}
    assert {d for name, d in n.items() if '.0.' in name} == {1} and {d for name, d in n.items() if '.1.' in name} == {2}
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        metrics = finetune_run(cfg, 'rte', 0)   # pairs: segment B reaches no one-row type table
    assert 0 <= metrics['accuracy'] <= 1
    out = export_glue_run(task_run_dir(cfg, 'rte', 0), tmp_path/'export')
    clf = AutoModelForSequenceClassification.from_pretrained(out, trust_remote_code=True)
    assert clf.config.model_type == arch
    enc = AutoTokenizer.from_pretrained(out)('a good day', 'a bad day', return_tensors='pt')
    assert clf(**enc).logits.shape == (1, 2)

def test_finetune_command_size_auto(runs, practice, tmp_path):
    "`electra-finetune --size auto` on a RoBERTa export (one-row token-type table) runs a task end to end."
    done, _ = runs
    env = {**os.environ, 'PYTHONPATH': str(ROOT), 'OMP_NUM_THREADS': '1'}
    r = subprocess.run([sys.executable, '-m', 'electra_gdes.finetune', '--checkpoint', str(done['roberta', 'gdes']/'discriminator'),
                        '--size', 'auto', '--glue_dir', str(practice), '--tasks', 'rte', '--runs', '1', '--epochs', '1',
                        '--batch_size', '16', '--max_length', '32', '--output_dir', str(tmp_path/'glue'),
                        '--submission_dir', str(tmp_path/'sub')], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path/'glue'/'default'/'results.jsonl').exists()

def test_resume_and_export_of_a_continued_run(released, corpus, tmp_path):
    "A continued run resumes against its saved (checkpoint-derived) settings, and `electra-export` rebuilds its architecture."
    from electra_gdes.export import export_checkpoint
    from electra_gdes.pretrain import run_pretraining
    def cfg(steps, **kw):
        return cfg_for(released['roberta'], 'gdes', corpus=str(corpus), cache_dir=str(tmp_path/'cache'), output_dir=str(tmp_path),
                       run_name='r', steps=steps, lr=1e-3, warmup_steps=1, batch_size=4, eval_every=100, log_every=1,
                       checkpoint_fractions=(1.0,), num_proc=1, precision='fp32', **kw)
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter('ignore')
        run = run_pretraining(cfg(2))
        out = export_checkpoint(run, tmp_path/'exported')
        a, b = AutoModel.from_pretrained(out/'discriminator'), AutoModel.from_pretrained(run/'discriminator')
        assert a.config.model_type == 'roberta'
        for (k, v), (k2, v2) in zip(a.state_dict().items(), b.state_dict().items()): assert k == k2 and torch.equal(v, v2), k
        run_pretraining(cfg(4, resume=True, allow_change=('steps',)))
    steps = [int(r.split(',')[0]) for r in (run/'log.csv').read_text().splitlines()[1:]]
    assert max(steps) == 4

def test_pretrain_command_with_init_discriminator_alone(released, corpus, tmp_path):
    "The issue's case: `electra-pretrain --init_discriminator DIR` alone (a local BERT checkpoint) trains and exports."
    from cli_helpers import script
    r = script('electra-pretrain', '--size', 'tiny', '--init_discriminator', released['bert'], '--corpus', corpus,
               '--cache_dir', tmp_path/'cache', '--output_dir', tmp_path/'out', '--run_name', 'r', '--steps', 2, '--warmup_steps', 1,
               '--batch_size', 4, '--max_length', 32, '--log_every', 1, '--num_proc', 1, '--precision', 'fp32')
    assert r.returncode == 0, r.stderr[-2000:]
    assert '(bert): shape, vocabulary and tokenizer come from the checkpoint' in r.stdout
    assert 'GDES, E_delta = E_D - E_G = 0: the discriminator starts as the released model' in r.stdout
    assert AutoModel.from_pretrained(tmp_path/'out'/'r'/'discriminator').config.model_type == 'bert'

@pytest.mark.parametrize('arch', ALL_ARCHS)
def test_attention_implementations_agree(released, arch):
    "On a CPU (no flash-attn) every architecture runs eager, SDPA and the kit's `cpu` attention, with the same outputs in eval mode."
    from electra_gdes.model import CPU_ATTENTION, SDPA_ATTENTION, BitsDropout, set_attention
    cfg = continued_config(cfg_for(released[arch], 'gdes'), verbose=False)
    model = continued_rtd_model(cfg, verbose=False)
    tok = AutoTokenizer.from_pretrained(released[arch])
    ids, attn, types = batch(tok)
    outs = {}
    for impl in ('eager', SDPA_ATTENTION, CPU_ATTENTION):
        set_attention(model, impl).eval()
        assert all(m.config._attn_implementation == impl for m in (model.generator, model.discriminator)
                   if type(m).__name__ != 'DebertaV2ForReplacedTokenDetection' and m._supports_sdpa)
        with torch.no_grad(): outs[impl] = model.discriminator(ids, attention_mask=attn, token_type_ids=types).logits
    torch.testing.assert_close(outs[SDPA_ATTENTION], outs['eager']); torch.testing.assert_close(outs[CPU_ATTENTION], outs['eager'])
    assert any(isinstance(m, BitsDropout) for m in model.modules())   # left in the cpu implementation's dropout

def test_released_pair_starts_delta_at_the_difference(released, tmp_path):
    "`--init_generator` + `--init_discriminator` (ELECTRA's released pair): GDES's E_delta = E_D - E_G, so step 0 is still the released discriminator."
    gen_cfg = transformers.AutoConfig.from_pretrained(released['electra'])
    gen_cfg.hidden_size, gen_cfg.intermediate_size, gen_cfg.num_attention_heads = 16, 32, 1
    transformers.ElectraForMaskedLM(gen_cfg).save_pretrained(tmp_path/'gen')
    AutoTokenizer.from_pretrained(released['electra']).save_pretrained(tmp_path/'gen')
    cfg = continued_config(cfg_for(released['electra'], 'gdes', init_generator=str(tmp_path/'gen')), verbose=False)
    model = continued_rtd_model(cfg, verbose=False).eval()
    ref = AutoModel.from_pretrained(released['electra']).eval()
    e_g = AutoModelForMaskedLM.from_pretrained(tmp_path/'gen').get_input_embeddings().weight
    delta = model.discriminator.get_input_embeddings().delta
    torch.testing.assert_close(delta, ref.get_input_embeddings().weight - e_g)
    assert delta.abs().max() > 0
    ids, attn, _ = batch(AutoTokenizer.from_pretrained(released['electra']))
    with torch.no_grad():
        torch.testing.assert_close(model.discriminator.base_model(ids, attention_mask=attn).last_hidden_state,
                                   ref(ids, attention_mask=attn).last_hidden_state)

def test_deberta_preset_keeps_emd_and_decoupled_training(released, corpus, tmp_path):
    """The DeBERTa presets (Enhanced Mask Decoder, decoupled training) continue a DeBERTa checkpoint with EMD (its position
    table new, step 0 still the released discriminator); for a RoBERTa checkpoint EMD is off (said in the log) and the
    decoupled steps run with no segment ids reaching its one-row type table."""
    from electra_gdes.model import DebertaV2ForMaskedLMWithEMD
    from electra_gdes.pretrain import run_pretraining
    deb = continued_config(pretrain_config('deberta', 'tiny', init_discriminator=str(released['deberta-v2']), max_length=32), verbose=False)
    assert deb.emd and deb.decoupled_training
    model = continued_rtd_model(deb, verbose=False).eval()
    assert isinstance(model.generator, DebertaV2ForMaskedLMWithEMD)
    assert model.discriminator.get_input_embeddings().delta.abs().max() == 0
    buf = io.StringIO()
    for arch in ('deberta-v2', 'roberta'):
        cfg = pretrain_config('deberta', 'tiny', init_discriminator=str(released[arch]), max_length=32, corpus=str(corpus),
                              cache_dir=str(tmp_path/'cache'), output_dir=str(tmp_path), run_name=arch, steps=3, lr=1e-3,
                              warmup_steps=1, batch_size=4, eval_every=3, log_every=1, checkpoint_fractions=(), num_proc=1,
                              precision='fp32')
        with contextlib.redirect_stdout(buf), warnings.catch_warnings():
            warnings.simplefilter('ignore')
            run = run_pretraining(cfg)
        saved = json.loads((run/'run_config.json').read_text())
        assert saved['decoupled_training'] and saved['emd'] == (arch == 'deberta-v2')
        assert AutoModel.from_pretrained(run/'discriminator').config.model_type == arch
    assert 'no Enhanced Mask Decoder: it is a DeBERTaV3 generator head (relative positions only), not one of roberta' in buf.getvalue()
