"""The GDES / ES / NES study's pieces: one config per mode differing only in the sharing, the embedding-similarity
analysis (which table is E_D in each mode), the side-by-side plots from real tiny runs."""
from dataclasses import asdict
import numpy as np, pytest, torch
import datasets
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from transformers import PreTrainedTokenizerFast
from electra_gdes.config import pretrain_config
from electra_gdes.model import build_rtd_model
from electra_gdes.sharing_study import (study_configs, train_mode, frequent_token_ids, pairwise_cosines, embedding_cosines,
                                        plot_study, plot_cosine_histograms)

def _tokenizer():
    vocab = {t: i for i, t in enumerate(['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'] + [f'w{i}' for i in range(27)])}
    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer(WordLevel(vocab, unk_token='[UNK]')), pad_token='[PAD]',
                                   unk_token='[UNK]', cls_token='[CLS]', sep_token='[SEP]', mask_token='[MASK]')

SHAPE = dict(hidden_size=32, num_heads=2, intermediate_size=64, embedding_size=32, num_layers=1, batch_size=8)

def test_study_configs_differ_only_in_the_sharing(tmp_path):
    cfgs = study_configs(50, tmp_path)
    assert list(cfgs) == ['gdes', 'es', 'nes']
    a = {m: asdict(c) for m, c in cfgs.items()}
    for m in ('es', 'nes'):
        assert {k for k in a['gdes'] if a['gdes'][k] != a[m][k]} == {'embedding_sharing', 'run_name'}
    assert (cfgs['gdes'].steps, cfgs['gdes'].warmup_steps, cfgs['gdes'].eval_every) == (50, 5, 10)

def test_pairwise_cosines_by_hand():
    t = torch.tensor([[3., 4.], [4., 3.], [0., -1.]])
    np.testing.assert_allclose(pairwise_cosines(t, [0, 1, 2]), [24 / 25, -4 / 5, -3 / 5], rtol=1e-6)
    np.testing.assert_allclose(pairwise_cosines(t, [2, 0]), [-4 / 5], rtol=1e-6)

def test_frequent_token_ids_skip_special_tokens():
    tok = _tokenizer()
    ds = datasets.Dataset.from_list([{'input_ids': [2, 7, 7, 9, 3]}, {'input_ids': [2, 9, 7, 8, 3, 0]}])
    assert frequent_token_ids(ds, tok, 2) == [7, 9]
    assert frequent_token_ids(ds, tok, 10) == [7, 9, 8]

def test_embedding_cosines_read_the_table_each_mode_gives_the_discriminator(tmp_path):
    tok, ids = _tokenizer(), list(range(5, 25))
    models = {m: build_rtd_model(pretrain_config('electra', 'tiny', embedding_sharing=m, **SHAPE), tok) for m in ('es', 'gdes', 'nes')}
    c = {m: embedding_cosines(model, ids) for m, model in models.items()}
    np.testing.assert_array_equal(c['es']['E_G'], c['es']['E_D'])          # one table
    np.testing.assert_array_equal(c['gdes']['E_G'], c['gdes']['E_D'])      # E_delta starts at 0
    assert not np.array_equal(c['nes']['E_G'], c['nes']['E_D'])            # two tables
    emb = models['gdes'].discriminator.base_model.embeddings.word_embeddings
    with torch.no_grad(): emb.delta.normal_()
    after = embedding_cosines(models['gdes'], ids)
    np.testing.assert_array_equal(after['E_G'], c['gdes']['E_G'])          # E_G untouched by E_delta ...
    np.testing.assert_allclose(after['E_D'], pairwise_cosines(emb.source.weight + emb.delta, ids), rtol=1e-6)   # ... E_D = E_G + E_delta

def test_train_mode_and_the_plots(tmp_path):
    tok = _tokenizer()
    rows = [{'input_ids': [2] + [5 + (s + j) % 20 for j in range(20)] + [3], 'token_type_ids': [0] * 22} for s in range(40)]
    ds = datasets.Dataset.from_list(rows)
    cfgs = study_configs(4, tmp_path/'runs', modes=('gdes', 'es'), **SHAPE)
    learners = {m: train_mode(c, tok, ds.select(range(32)), ds.select(range(32, 40))) for m, c in cfgs.items()}
    for m, l in learners.items():
        assert [r['step'] for r in l.rtd_eval.rows] == [1, 2, 3, 4]
        assert (cfgs[m].run_dir/'discriminator'/'config.json').exists() and (cfgs[m].run_dir/'eval.csv').exists()
    fig = plot_study({m: c.run_dir for m, c in cfgs.items()}, tmp_path/'curves.png')
    assert (tmp_path/'curves.png').stat().st_size > 10_000
    assert [l.get_label() for l in fig.axes[0].get_lines() if l.get_label() in cfgs] == ['gdes', 'es']
    fig = plot_cosine_histograms({m: embedding_cosines(l.model, list(range(5, 25))) for m, l in learners.items()}, tmp_path/'cos.png')
    assert len(fig.axes) == 2 and (tmp_path/'cos.png').stat().st_size > 10_000
