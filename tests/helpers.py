"Small shared builders for the fine-tuning tests."
from pathlib import Path
from transformers import BertTokenizerFast, ElectraConfig, ElectraForPreTraining

def tiny_tokenizer(words) -> BertTokenizerFast:
    "A WordPiece tokenizer over the special tokens and `words`."
    return BertTokenizerFast(vocab={w: i for i, w in enumerate(['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', *words])})

def tiny_electra_checkpoint(path, tokenizer, embedding_size=16, hidden_size=32, num_hidden_layers=2, **config) -> Path:
    "A randomly initialised ELECTRA discriminator with `tokenizer`, saved as an HF directory at `path`."
    cfg = ElectraConfig(vocab_size=len(tokenizer), embedding_size=embedding_size, hidden_size=hidden_size,
                        num_hidden_layers=num_hidden_layers, num_attention_heads=2, intermediate_size=2 * hidden_size,
                        max_position_embeddings=128, **config)
    ElectraForPreTraining(cfg).save_pretrained(path); tokenizer.save_pretrained(path)
    return Path(path)
