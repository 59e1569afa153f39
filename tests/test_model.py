"Generator / discriminator shapes, embedding-sharing gradient paths, masked-only logits, export and continued pretraining."
import pytest
import torch
import torch.nn.functional as F
import transformers
from transformers import AutoModel, AutoModelForSequenceClassification, AutoModelForTokenClassification, BertTokenizerFast

from electra_gdes.config import pretrain_config
from electra_gdes.model import (DebertaRTDHead, GDESEmbedding, RTDModel, build_rtd_model, discriminator_config,
                                generator_config, load_rtd_model, share_embeddings)
from electra_gdes.export import pretraining_card, push_to_hub, save_discriminator, save_generator
from electra_gdes.rtd import RTDLoss, mask_tokens, masked_slots

transformers.logging.set_verbosity_error()
transformers.logging.disable_progress_bar()

WORDS = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'] + [f'w{i}' for i in range(59)]


@pytest.fixture(scope='module')
def tok(): return BertTokenizerFast(vocab={w: i for i, w in enumerate(WORDS)})


@pytest.fixture(scope='module')
def batch(tok):
    g = torch.Generator().manual_seed(0)
    texts = [' '.join(f'w{i}' for i in torch.randint(59, (n,), generator=g).tolist()) for n in (30, 12, 5)]
    enc = tok(texts, ['w1 w2', 'w3', 'w4 w5 w6'], padding=True, return_tensors='pt')   # pairs: token types 0 and 1
    ids, attn, tt = enc['input_ids'], enc['attention_mask'], enc['token_type_ids']
    masked, is_masked = mask_tokens(ids, attn, tok.all_special_ids, tok.mask_token_id, len(tok), 0.15, 'electra', g,
                                    max_length=32)
    return ids, attn, tt, masked, is_masked


def tiny(backbone, mode='gdes', **kw):
    return pretrain_config(backbone, 'tiny', embedding_sharing=mode, max_position_embeddings=64, max_length=64, **kw)


def model_for(backbone, mode, tok, seed=0):
    torch.manual_seed(seed)
    return build_rtd_model(tiny(backbone, mode), tok)


@pytest.mark.parametrize('size,gen,disc', [
    ('small', (64, 1, 256, 12, 128), (256, 4, 1024, 12, 128)),
    ('base', (256, 4, 1024, 12, 768), (768, 12, 3072, 12, 768)),
    ('large', (256, 4, 1024, 24, 1024), (1024, 16, 4096, 24, 1024))])
def test_electra_generator_is_narrower_same_depth(tok, size, gen, disc):
    cfg = pretrain_config('electra', size)
    shape = lambda c: (c.hidden_size, c.num_attention_heads, c.intermediate_size, c.num_hidden_layers, c.embedding_size)
    assert shape(generator_config(cfg, tok)) == gen and shape(discriminator_config(cfg, tok)) == disc
    assert discriminator_config(cfg, tok).vocab_size == len(tok)


@pytest.mark.parametrize('size,layers,hidden', [('xsmall', 12, 384), ('small', 6, 768), ('base', 12, 768), ('large', 24, 1024)])
def test_deberta_generator_is_half_depth_same_width(tok, size, layers, hidden):
    cfg = pretrain_config('deberta', size)
    g, d = generator_config(cfg, tok), discriminator_config(cfg, tok)
    assert (d.num_hidden_layers, d.hidden_size) == (layers, hidden)
    assert (g.num_hidden_layers, g.hidden_size, g.num_attention_heads) == (layers // 2, hidden, d.num_attention_heads)
    assert d.relative_attention and d.position_buckets == 256 and d.pos_att_type == ['p2c', 'c2p']
    assert not d.position_biased_input and d.type_vocab_size == 0


def test_plus_plus_generator_has_discriminator_size(tok):
    cfg = pretrain_config('electra', 'small', gen_width_ratio=1.0)
    g, d = generator_config(cfg, tok), discriminator_config(cfg, tok)
    assert (g.hidden_size, g.num_attention_heads, g.intermediate_size) == (d.hidden_size, d.num_attention_heads, d.intermediate_size)


def test_deberta_rtd_head_adds_cls_state_before_layernorm():
    cfg = transformers.DebertaV2Config(hidden_size=6, layer_norm_eps=1e-7, hidden_act='gelu')
    head = DebertaRTDHead(cfg)
    h = torch.randn(2, 4, 6)
    x = h[:, 0:1] + h
    x = (x - x.mean(-1, keepdim=True)) / torch.sqrt(x.var(-1, unbiased=False, keepdim=True) + 1e-7)
    x = x * head.LayerNorm.weight + head.LayerNorm.bias
    want = F.gelu(x @ head.dense.weight.T + head.dense.bias) @ head.classifier.weight.T + head.classifier.bias
    assert torch.allclose(head(h), want.squeeze(-1), atol=1e-5)


def test_deberta_head_has_the_official_parameter_names(tok):
    "Named like the official `mask_predictions` head, so a released DeBERTaV3 discriminator loads with its head."
    disc = build_rtd_model(tiny('deberta', 'nes'), tok).discriminator
    head_keys = {k for k in disc.state_dict() if not k.startswith('deberta.')}
    assert head_keys == {f'mask_predictions.{m}.{p}' for m in ('dense', 'LayerNorm', 'classifier') for p in ('weight', 'bias')}


def embedding_tables(model):
    return model.generator.base_model.embeddings, model.discriminator.base_model.embeddings


def backward_of(model, batch, which):
    "Backward of the MLM loss alone, the discriminator loss alone, or their weighted sum."
    ids, attn, tt, masked, is_masked = batch
    model.zero_grad(set_to_none=True)
    out = model(masked, attn, tt, is_masked)
    loss_func = RTDLoss(model.cfg.disc_weight)
    total = loss_func(out, ids, is_masked, attn)
    mlm = F.cross_entropy(out.mlm_logits[out.slot_valid], ids[is_masked])
    disc = F.binary_cross_entropy_with_logits(out.disc_logits[attn.bool()], (out.disc_input != ids)[attn.bool()].float())
    {'mlm': mlm, 'disc': disc, 'total': total}[which].backward()


def nonzero(grad): return grad is not None and grad.abs().sum().item() > 0


@pytest.mark.parametrize('backbone', ['electra', 'deberta'])
def test_gdes_gradient_paths(tok, batch, backbone):
    model = model_for(backbone, 'gdes', tok)
    g_emb, d_emb = embedding_tables(model)
    names = ['word_embeddings'] + (['position_embeddings'] if backbone == 'electra' else [])
    for n in names:
        assert isinstance(getattr(d_emb, n), GDESEmbedding) and getattr(d_emb, n).source is getattr(g_emb, n)
        assert getattr(d_emb, n).delta.abs().sum() == 0                       # E_delta starts at zero
    assert d_emb.LayerNorm is not g_emb.LayerNorm                               # LayerNorm is not shared under GDES
    backward_of(model, batch, 'disc')
    for n in names:
        assert not nonzero(getattr(g_emb, n).weight.grad), f'the RTD loss reached E_G ({n})'
        assert nonzero(getattr(d_emb, n).delta.grad), f'the RTD loss did not reach E_delta ({n})'
    backward_of(model, batch, 'mlm')
    assert nonzero(g_emb.word_embeddings.weight.grad)
    for n in names: assert not nonzero(getattr(d_emb, n).delta.grad)


@pytest.mark.parametrize('backbone', ['electra', 'deberta'])
def test_es_both_losses_reach_the_shared_table(tok, batch, backbone):
    model = model_for(backbone, 'es', tok)
    g_emb, d_emb = embedding_tables(model)
    assert d_emb.word_embeddings.weight is g_emb.word_embeddings.weight and d_emb.LayerNorm is g_emb.LayerNorm
    if backbone == 'electra':
        assert d_emb.position_embeddings is g_emb.position_embeddings
        assert d_emb.token_type_embeddings is g_emb.token_type_embeddings
        assert model.generator.generator_lm_head.weight is g_emb.word_embeddings.weight
    assert len({id(p) for p in model.parameters()}) == len(list(model.parameters()))   # counted once for the optimizer
    backward_of(model, batch, 'disc')
    assert nonzero(g_emb.word_embeddings.weight.grad)
    backward_of(model, batch, 'mlm')
    assert nonzero(g_emb.word_embeddings.weight.grad)


@pytest.mark.parametrize('backbone', ['electra', 'deberta'])
def test_nes_tables_are_separate(tok, batch, backbone):
    model = model_for(backbone, 'nes', tok)
    g_emb, d_emb = embedding_tables(model)
    assert d_emb.word_embeddings is not g_emb.word_embeddings and d_emb.LayerNorm is not g_emb.LayerNorm
    backward_of(model, batch, 'disc')
    assert not nonzero(g_emb.word_embeddings.weight.grad) and nonzero(d_emb.word_embeddings.weight.grad)


@pytest.mark.parametrize('backbone', ['electra', 'deberta'])
@pytest.mark.parametrize('mode', ['gdes', 'es', 'nes'])
def test_each_loss_reaches_only_its_model(tok, batch, backbone, mode):
    """Backward of each loss alone: the RTD loss reaches no generator parameter but the tables ES shares (no gradient
    through the sampled ids), the MLM loss no discriminator parameter of its own (under GDES not E_delta)."""
    model = model_for(backbone, mode, tok)
    gen_ids = {id(p) for p in model.generator.parameters()}
    shared = {id(p) for p in model.generator.base_model.embeddings.parameters()} if mode == 'es' else set()
    backward_of(model, batch, 'disc')
    reached = [n for n, p in model.generator.named_parameters() if nonzero(p.grad) and id(p) not in shared]
    assert reached == [], f'the RTD loss reached the generator: {reached}'
    assert nonzero(model.generator.base_model.embeddings.word_embeddings.weight.grad) == (mode == 'es')
    assert all(nonzero(p.grad) for n, p in model.discriminator.named_parameters() if 'classifier' in n or 'discriminator_predictions.dense_prediction' in n)
    backward_of(model, batch, 'mlm')
    reached = [n for n, p in model.discriminator.named_parameters() if id(p) not in gen_ids and nonzero(p.grad)]
    assert reached == [], f'the MLM loss reached the discriminator: {reached}'
    assert nonzero(model.generator.base_model.embeddings.word_embeddings.weight.grad)


@pytest.mark.parametrize('backbone,mode', [('electra', 'gdes'), ('electra', 'es'), ('deberta', 'gdes'), ('deberta', 'nes')])
def test_every_parameter_gets_a_gradient(tok, batch, backbone, mode):
    "No unused parameter (DDP needs none): replaced embedding tables are gone from the model."
    model = model_for(backbone, mode, tok)
    backward_of(model, batch, 'total')
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert missing == []


@pytest.mark.parametrize('backbone', ['electra', 'deberta'])
def test_masked_only_logits_equal_full_logits(tok, batch, backbone):
    ids, attn, tt, masked, is_masked = batch
    model = model_for(backbone, 'gdes', tok).eval()
    with torch.no_grad():
        out = model(masked, attn, tt, is_masked)
        full = model.generator(masked, attention_mask=attn, token_type_ids=tt).logits
    slots = masked_slots(model.cfg.mask_prob, model.cfg.max_length, ids.shape[1])
    assert out.mlm_logits.shape == (ids.shape[0], slots, len(tok))
    assert torch.equal(out.slot_valid.sum(-1), is_masked.sum(-1))
    assert torch.allclose(out.mlm_logits[out.slot_valid], full[is_masked], atol=1e-5)   # the masked positions, in order


def test_narrow_deberta_generator_uses_projecting_head(tok, batch):
    "A DeBERTa generator narrower than the shared table projects to the embedding size before the tied output layer."
    ids, attn, tt, masked, is_masked = batch
    torch.manual_seed(0)
    model = build_rtd_model(tiny('deberta', 'gdes', gen_width_ratio=0.5, emd=False), tok).eval()   # EMD needs the full width
    assert model.generator.config.hidden_size == 64 and model.generator.config.embedding_size == 128
    assert model.generator.get_output_embeddings().weight is model.generator.deberta.embeddings.word_embeddings.weight
    with torch.no_grad():
        out = model(masked, attn, tt, is_masked)
        full = model.generator(masked, attention_mask=attn, token_type_ids=tt).logits
    assert torch.allclose(out.mlm_logits[out.slot_valid], full[is_masked], atol=1e-5)


def test_discriminator_input_replaces_masked_positions_only(tok, batch):
    ids, attn, tt, masked, is_masked = batch
    model = model_for('electra', 'gdes', tok)
    out = model(masked, attn, tt, is_masked, rng=torch.Generator().manual_seed(1))
    assert torch.equal(out.disc_input[~is_masked], masked[~is_masked])
    assert torch.equal(out.disc_input[is_masked], out.sampled_ids[out.slot_valid])
    disc = F.binary_cross_entropy_with_logits(out.disc_logits, (out.disc_input != ids).float())
    # the discriminator's loss does not reach the generator's logits through the samples (argmax, no relaxation)
    assert torch.autograd.grad(disc, out.mlm_logits, allow_unused=True, retain_graph=True) == (None,)
    again = model(masked, attn, tt, is_masked, rng=torch.Generator().manual_seed(1))
    assert torch.equal(again.sampled_ids, out.sampled_ids)
    assert out.disc_logits.shape == ids.shape


def test_bad_sharing_and_shapes_raise(tok):
    model = model_for('electra', 'nes', tok)
    with pytest.raises(ValueError, match='cfg.embedding_sharing'):
        share_embeddings(model.generator, model.discriminator, 'tied')
    with pytest.raises(ValueError, match="embedding_sharing='nes'"):
        other = build_rtd_model(tiny('electra', 'nes', embedding_size=32), tok).generator
        share_embeddings(other, model.discriminator, 'gdes')
    with pytest.raises(ValueError, match='divisible'):
        generator_config(pretrain_config('electra', 'small', gen_width_ratio=0.7), tok)


@pytest.mark.parametrize('backbone', ['electra', 'deberta'])
@pytest.mark.parametrize('mode', ['gdes', 'es', 'nes'])
def test_export_round_trip(tok, batch, tmp_path, backbone, mode):
    ids, attn, tt, masked, is_masked = batch
    model = model_for(backbone, mode, tok)
    with torch.no_grad():          # a trained model: E_delta is not zero, and the shared tables moved
        for p in model.parameters(): p.add_(0.01 * torch.randn_like(p))
    model.eval()
    disc_dir, gen_dir = save_discriminator(model, tok, tmp_path/'disc'), save_generator(model, tok, tmp_path/'gen')
    assert sorted(p.name for p in tmp_path.iterdir()) == ['disc', 'gen']      # no temporary directories left
    assert (disc_dir/'model.safetensors').exists() and (disc_dir/'config.json').exists() and (disc_dir/'tokenizer.json').exists()
    # the training model is unchanged by the export (GDES tables are swapped back)
    assert isinstance(model.discriminator.base_model.embeddings.word_embeddings, GDESEmbedding) == (mode == 'gdes')
    with torch.no_grad():
        want = model.discriminator.base_model(ids, attention_mask=attn, token_type_ids=tt).last_hidden_state
        loaded, info = AutoModel.from_pretrained(disc_dir, output_loading_info=True)
        assert info['missing_keys'] == set() or list(info['missing_keys']) == []
        got = loaded.eval()(ids, attention_mask=attn, token_type_ids=tt).last_hidden_state
        assert torch.allclose(got, want, atol=1e-5)
        for auto in (AutoModelForSequenceClassification, AutoModelForTokenClassification):
            m, info = auto.from_pretrained(disc_dir, num_labels=3, output_loading_info=True)
            assert not [k for k in info['missing_keys'] if 'embeddings' in k or 'encoder' in k], info['missing_keys']
            h = m.base_model.eval()(ids, attention_mask=attn, token_type_ids=tt).last_hidden_state
            assert torch.allclose(h, want, atol=1e-5)
        gen = type(model.generator).from_pretrained(gen_dir)
        assert torch.allclose(gen.eval()(masked, attention_mask=attn, token_type_ids=tt).logits,
                              model.generator(masked, attention_mask=attn, token_type_ids=tt).logits, atol=1e-5)
    # saving again over an existing directory replaces it
    save_discriminator(model, tok, tmp_path/'disc')
    assert sorted(p.name for p in tmp_path.iterdir()) == ['disc', 'gen']


@pytest.mark.parametrize('backbone', ['electra', 'deberta'])
def test_continued_pretraining_starts_delta_at_difference(tok, batch, tmp_path, backbone):
    ids, attn, tt, masked, is_masked = batch
    cfg = tiny(backbone, 'nes')                     # a released pair: two independent tables
    torch.manual_seed(3)
    released = build_rtd_model(cfg, tok).eval()
    save_generator(released, tok, tmp_path/'gen'); save_discriminator(released, tok, tmp_path/'disc')
    model = load_rtd_model(tiny(backbone, 'gdes'), tmp_path/'gen', tmp_path/'disc', tok).eval()
    g_emb, d_emb = embedding_tables(model)
    r_g, r_d = embedding_tables(released)
    names = ['word_embeddings'] + (['position_embeddings'] if backbone == 'electra' else [])
    for n in names:
        assert torch.allclose(getattr(d_emb, n).delta, getattr(r_d, n).weight - getattr(r_g, n).weight, atol=1e-6)
        assert torch.allclose(getattr(d_emb, n).weight, getattr(r_d, n).weight, atol=1e-6)
    with torch.no_grad():            # so the discriminator computes exactly what the released one did
        assert torch.allclose(model.discriminator(ids, attention_mask=attn, token_type_ids=tt).logits,
                              released.discriminator(ids, attention_mask=attn, token_type_ids=tt).logits, atol=1e-5)
    with pytest.raises(ValueError, match='tokenizer'):
        load_rtd_model(tiny(backbone, 'gdes'), tmp_path/'gen', tmp_path/'disc',
                       BertTokenizerFast(vocab={w: i for i, w in enumerate(WORDS[:40])}))


def test_savers_unwrap_ddp_and_compile(tok, tmp_path):
    model = model_for('electra', 'gdes', tok)
    wrapped = torch.compile(torch.nn.DataParallel(model))        # not run: wrapping alone costs nothing
    save_discriminator(wrapped, tok, tmp_path/'disc'); save_generator(wrapped, tok, tmp_path/'gen')
    loaded = AutoModel.from_pretrained(tmp_path/'disc')
    want = model.discriminator.electra.embeddings.word_embeddings.weight
    assert torch.equal(loaded.embeddings.word_embeddings.weight, want)
    with pytest.raises(TypeError, match='expected an RTDModel'):
        save_generator(torch.nn.Linear(2, 2), tok, tmp_path/'x')


def test_export_writes_a_model_card(tok, tmp_path):
    cfg = tiny('electra', 'gdes', corpus='default', steps=300)
    model = model_for('electra', 'gdes', tok)
    d = save_discriminator(model, tok, tmp_path/'disc', cfg, {'step': 120, 'tokens_seen': 61_440, 'held_out_auc': 0.612})
    g = save_generator(model, tok, tmp_path/'gen', cfg)
    card, gcard = (d/'README.md').read_text(), (g/'README.md').read_text()
    front = card.split('---')[1]
    assert 'license: apache-2.0' in front and 'library_name: transformers' in front and 'gdes' in front
    for want in ('electra / tiny', 'GDES', '120 of 300 steps', '61,440 tokens seen', 'corpus | default', 'bert-uncased',
                 '| held_out_auc | 0.6120 |', 'ElectraForPreTraining.from_pretrained', 'Apache-2.0',
                 'clark2020electra', 'he2021debertav3'):
        assert want in card, want
    assert 'ElectraForMaskedLM.from_pretrained' in gcard and 'pipeline_tag: fill-mask' in gcard and 'held_out' not in gcard
    assert sorted(p.name for p in tmp_path.iterdir()) == ['disc', 'gen']
    assert 'DeBERTaV3-xsmall' in pretraining_card(pretrain_config('deberta', 'xsmall', embedding_sharing='nes'), 'generator')
    assert not (save_discriminator(model, tok, tmp_path/'plain')/'README.md').exists()     # no cfg: no card
    with pytest.raises(ValueError, match="'discriminator' or 'generator'"): pretraining_card(cfg, 'head')


@pytest.mark.parametrize('fail_at', ['tokenizer', 'rename'])
def test_failed_export_keeps_the_old_one(tok, tmp_path, monkeypatch, fail_at):
    "A save that fails midway (writing the tokenizer, or the final rename) leaves the earlier export and no temporary directory."
    import os
    model = model_for('electra', 'gdes', tok)
    cfg = tiny('electra', 'gdes')
    save_discriminator(model, tok, tmp_path/'disc', cfg, {'held_out_auc': 0.5})
    before = {p.name: p.read_bytes() for p in (tmp_path/'disc').iterdir()}
    with torch.no_grad(): model.discriminator.electra.embeddings.word_embeddings.delta.add_(1.0)   # a different model
    def crash(*a, **k): raise OSError('disk full')
    if fail_at == 'tokenizer': monkeypatch.setattr(type(tok), 'save_pretrained', crash)
    else:
        replace = os.replace
        monkeypatch.setattr(os, 'replace', lambda src, dst: crash() if str(src).endswith('.tmp') else replace(src, dst))
    with pytest.raises(OSError, match='disk full'): save_discriminator(model, tok, tmp_path/'disc', cfg)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ['disc']
    assert {p.name: p.read_bytes() for p in (tmp_path/'disc').iterdir()} == before


def test_push_to_hub_offline_names_the_repo_and_the_cause(tok, tmp_path):
    "Offline (HF_HUB_OFFLINE=1, set before huggingface_hub is imported), the push fails at once with a clear error."
    import os, subprocess, sys
    d = save_discriminator(model_for('electra', 'nes', tok), tok, tmp_path/'disc', tiny('electra', 'nes'))
    code = ('from electra_gdes.export import push_to_hub\n'
            f'try: push_to_hub({str(d)!r}, "someone/electra-tiny-nes")\n'
            'except RuntimeError as e: print("ERROR", e); raise SystemExit(3)\n')
    p = subprocess.run([sys.executable, '-c', code], env={**os.environ, 'HF_HUB_OFFLINE': '1'}, capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 3, p.stdout + p.stderr
    assert "'someone/electra-tiny-nes'" in p.stdout and 'offline' in p.stdout.lower() and 'HF_HUB_OFFLINE' in p.stdout
    with pytest.raises(FileNotFoundError, match='export it first'): push_to_hub(tmp_path/'missing', 'someone/x')
