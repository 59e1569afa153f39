"Small shared builders for the fine-tuning tests."
from pathlib import Path
from transformers import BertTokenizerFast, ElectraConfig, ElectraForPreTraining
from electra_gdes.glue_data import POSITIVE_WORDS, NEGATIVE_WORDS, make_practice_glue

GLUE_FIXTURES = Path(__file__).parent/'fixtures'/'glue'

def tiny_tokenizer(words) -> BertTokenizerFast:
    "A WordPiece tokenizer over the special tokens and `words`."
    return BertTokenizerFast(vocab={w: i for i, w in enumerate(['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', *words])})

def tiny_electra_checkpoint(path, tokenizer, embedding_size=16, hidden_size=32, num_hidden_layers=2, max_position_embeddings=128,
                            **config) -> Path:
    "A randomly initialised ELECTRA discriminator with `tokenizer`, saved as an HF directory at `path`."
    cfg = ElectraConfig(vocab_size=len(tokenizer), embedding_size=embedding_size, hidden_size=hidden_size,
                        num_hidden_layers=num_hidden_layers, num_attention_heads=2, intermediate_size=2 * hidden_size,
                        max_position_embeddings=max_position_embeddings, **config)
    ElectraForPreTraining(cfg).save_pretrained(path); tokenizer.save_pretrained(path)
    return Path(path)

def practice_suite_and_checkpoint(d, n_train, n_dev, n_test, **config) -> tuple[Path, Path]:
    "A practice GLUE suite from the fixture corpus in `d/practice` and a tiny ELECTRA checkpoint over its words in `d/disc`."
    practice = make_practice_glue(d/'practice', (GLUE_FIXTURES/'corpus.txt').read_text().split('\n\n'),
                                  n_train=n_train, n_dev=n_dev, n_test=n_test)
    words = ('the', 'a', 'and', 'of', 'is', 'not', 'what', *POSITIVE_WORDS, *NEGATIVE_WORDS)
    return practice, tiny_electra_checkpoint(d/'disc', tiny_tokenizer(words), **config)


def word_level_data():
    "A 32-word WordLevel tokenizer and 40 cyclic 22-token examples."
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast
    import datasets
    vocab = {t: i for i, t in enumerate(['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'] + [f'w{i}' for i in range(27)])}
    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(WordLevel(vocab, unk_token='[UNK]')), pad_token='[PAD]',
                                  unk_token='[UNK]', cls_token='[CLS]', sep_token='[SEP]', mask_token='[MASK]')
    rows = [{'input_ids': [2] + [5 + (s + j) % 20 for j in range(20)] + [3], 'token_type_ids': [0] * 22} for s in range(40)]
    return tok, datasets.Dataset.from_list(rows)

def tiny_pretrain_cfg(tmp_path, **kw):
    "The tiny ELECTRA preset shrunk to one 32-wide layer, 10 steps of 8 examples, no checkpoints, output in `tmp_path`."
    from electra_gdes.config import pretrain_config
    return pretrain_config('electra', 'tiny', **{**dict(hidden_size=32, num_heads=2, intermediate_size=64, embedding_size=32,
                           num_layers=1, steps=10, warmup_steps=2, batch_size=8, checkpoint_fractions=(), output_dir=str(tmp_path)), **kw})


def _grad(p): return None if p.grad is None else float(p.grad.abs().sum())

def assert_gradient_paths(model, tok, mode, texts):
    """In an RTD `model` (eval: no dropout) on pairs of `texts`: MLM reaches E_G, never the discriminator; RTD reaches E_delta only
    under GDES (not E_G), the one shared table (and position, type tables, LayerNorm) under ES, the discriminator's own table under NES."""
    import torch
    from electra_gdes.encoders import embedding_module
    from electra_gdes.rtd import RTDLoss, mask_tokens, masking_excluded_ids
    model.eval()
    enc = tok(texts[:4], texts[1:5], truncation=True, max_length=32, padding=True, return_tensors='pt')
    ids, attn = enc['input_ids'], enc['attention_mask']
    types = enc.get('token_type_ids', torch.zeros_like(ids))
    masked, is_masked = mask_tokens(ids, attn, masking_excluded_ids(tok), tok.mask_token_id, len(tok), 0.3,
                                    generator=torch.Generator().manual_seed(0))
    out = model(masked, attn, types, is_masked, rng=torch.Generator().manual_seed(0))
    mlm, disc = RTDLoss.terms(out, ids, attn)
    e_g = model.generator.get_input_embeddings().weight
    d_word = model.discriminator.get_input_embeddings()
    d_param = d_word.delta if mode == 'gdes' else d_word.weight
    mlm.backward(retain_graph=True)
    assert _grad(e_g) > 0
    assert _grad(d_param) in (None, 0.0) or mode == 'es'
    assert all(p.grad is None for n, p in model.discriminator.named_parameters() if 'discriminator_predictions' in n)
    model.zero_grad(set_to_none=True)
    disc.backward()
    if mode == 'gdes':
        assert _grad(d_word.delta) > 0 and _grad(e_g) is None    # stop_grad(E_G): RTD never reaches the generator's table
    elif mode == 'es':
        assert d_word is model.generator.get_input_embeddings() and _grad(e_g) > 0   # one table, both losses
        for name in ('position_embeddings', 'token_type_embeddings', 'LayerNorm'):
            assert embedding_module(model.discriminator, name) is embedding_module(model.generator, name)
    else:
        assert d_word is not model.generator.get_input_embeddings() and _grad(d_word.weight) > 0 and _grad(e_g) is None
