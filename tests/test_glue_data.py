"GLUE data: the official TSV layouts (fixtures), the hub path, bad input, truncation, doubling, tokenization, the practice suite."
import json, os, random, shutil, time, warnings
from pathlib import Path

import datasets
import pytest
from datasets import Dataset, DatasetDict

from electra_gdes import glue_data
from electra_gdes.glue_data import (GLUE_SPECS, GlueFormatError, column_values, double_unordered, entailment_rule,
                                    glue_collate, glue_features, glue_spec, glue_tokenize, is_practice_suite, load_glue,
                                    make_practice_glue, paraphrase_rule, qnli_rule, read_glue_tsv, sentiment_rule,
                                    similarity_rule, truncate_pair)

FIX = Path(__file__).parent/'fixtures'/'glue'
NLI3 = ('entailment', 'neutral', 'contradiction')


def col(ds, name): return column_values(ds, name)


def data_rows(path, header=True):
    lines = [l for l in Path(path).read_text(encoding='utf-8-sig').splitlines() if l]
    return [l.split('\t') for l in (lines[1:] if header else lines)]


# ---- each official layout, read from a fixture written in it -------------------------------------------------------

def test_cola_headerless_train_dev_and_indexed_test():
    t = load_glue('CoLA', glue_dir=FIX)
    test_rows = data_rows(FIX/'CoLA/train.tsv', header=False)
    assert len(test_rows[0]) == 4                            # source, label, original label, sentence; no header
    assert col(t.train, 'label') == [int(r[1]) for r in test_rows] == [1, 1, 0, 1]
    assert col(t.train, 'sentence1')[0] == "Our friends won't buy this analysis, let alone the next one we propose."
    assert col(t.train, 'sentence2') == [''] * 4 and col(t.train, 'idx') == [0, 1, 2, 3]
    assert col(t.dev['dev'], 'label') == [1, 0]
    assert col(t.test['test'], 'idx') == [0, 1, 2] and col(t.test['test'], 'label') == [-1] * 3
    assert (t.num_labels, t.label_names, t.is_regression, t.synthetic) == (2, ('unacceptable', 'acceptable'), False, False)


def test_sst2_and_mrpc_keep_quotes_and_spacing():
    s = load_glue('sst2', glue_dir=FIX)
    assert col(s.train, 'label') == [0, 0, 1]
    assert col(s.train, 'sentence1')[0] == 'hide new secretions from the parental units '   # trailing space kept
    m = load_glue('mrpc', glue_dir=FIX)                      # train/dev start with a byte-order mark, like the download
    assert col(m.train, 'label') == [1, 0]
    assert col(m.train, 'sentence1')[0].startswith('Amrozi accused his brother , whom he called " the witness "')
    assert col(m.train, 'sentence2')[1].startswith('Yucaipa bought')
    assert col(m.test['test'], 'idx') == [0, 1]


def test_stsb_ten_columns_score_last():
    t = load_glue('sts-b', glue_dir=FIX)
    assert len(data_rows(FIX/'STS-B/train.tsv')[0]) == 10 and len(data_rows(FIX/'STS-B/test.tsv')[0]) == 9
    assert col(t.train, 'label') == pytest.approx([5.0, 3.8, 3.8])
    assert col(t.train, 'sentence2')[1] == 'A man is playing a flute.'
    assert t.train.features['label'].dtype == 'float32' and (t.num_labels, t.is_regression) == (1, True)
    assert col(t.test['test'], 'label') == [-1.0, -1.0]


def test_qqp_id_column_and_empty_question_dropped(capsys):
    t = load_glue('qqp', glue_dir=FIX)
    assert 'dropped 1 row(s) with an empty question' in capsys.readouterr().out
    assert col(t.train, 'idx') == [133273, 402555, 360472]   # the `id` column; row 201841 had an empty question2
    assert col(t.train, 'label') == [0, 1, 1]
    assert col(t.dev['dev'], 'idx') == [40066, 213409]
    assert col(t.test['test'], 'idx') == [0, 1, 2]           # test: id, question1, question2
    assert col(t.test['test'], 'sentence2')[2] == 'How can I learn French quickly?'


def test_mnli_layouts_and_diagnostic():
    t = load_glue('MNLI', glue_dir=FIX)
    assert [len(data_rows(FIX/f'MNLI/{f}.tsv')[0]) for f in ('train', 'dev_matched', 'test_matched')] == [12, 16, 10]
    assert sorted(t.dev) == ['dev_matched', 'dev_mismatched']
    assert sorted(t.test) == ['ax', 'test_matched', 'test_mismatched']
    # gold_label is the last column; row 3's five annotator labels disagree (4 entailment, 1 neutral)
    assert [NLI3[i] for i in col(t.dev['dev_matched'], 'label')] == ['neutral', 'contradiction', 'entailment']
    assert [NLI3[i] for i in col(t.train, 'label')] == ['neutral', 'entailment', 'entailment']
    assert col(t.train, 'sentence1')[2] == 'One of our number will carry out your instructions minutely.'   # column 8
    assert col(t.train, 'sentence2')[2].startswith('A member of my team')                                 # column 9
    assert (len(t.test['test_matched']), len(t.test['test_mismatched']), len(t.test['ax'])) == (3, 2, 3)
    assert col(t.test['ax'], 'sentence2')[0] == 'The cat did not sit on the mat.'
    assert {t.submission_name(s) for s in t.test} == {'MNLI-m', 'MNLI-mm', 'AX'}


@pytest.mark.parametrize('task,labels', [('qnli', [1, 1, 0]), ('rte', [1, 0]), ('wnli', [1, 1, 1, 0])])
def test_index_sentence_pair_label_layouts(task, labels):
    t = load_glue(task, glue_dir=FIX)
    assert col(t.train, 'label') == labels
    assert col(t.train, 'idx') == list(range(len(labels)))
    assert all(col(t.train, 'sentence2')) and col(t.test['test'], 'label') == [-1] * len(t.test['test'])


# ---- bad input ------------------------------------------------------------------------------------------------------

@pytest.fixture
def glue_copy(tmp_path):
    d = tmp_path/'glue'; shutil.copytree(FIX, d); return d


def test_diagnostic_set_under_its_other_file_names(glue_copy):
    for name in ('AX/AX.tsv', 'AX.tsv'):
        shutil.rmtree(glue_copy/'diagnostic', ignore_errors=True); [p.unlink() for p in glue_copy.rglob('AX.tsv')]
        (glue_copy/name).parent.mkdir(exist_ok=True); shutil.copy(FIX/'diagnostic/diagnostic.tsv', glue_copy/name)
        assert col(load_glue('mnli', glue_dir=glue_copy).test['ax'], 'idx') == [0, 1, 2]
    (glue_copy/'AX.tsv').unlink()
    # MNLI alone trains without it; a sweep of every task (which submits AX) is refused before it starts
    assert 'ax' not in load_glue('mnli', glue_dir=glue_copy).test
    with pytest.raises(glue_data.GlueDataError, match=r'diagnostic/diagnostic\.tsv: missing'): glue_data.load_glue_tasks(GLUE_SPECS, glue_copy)


def test_unknown_task_names_the_tasks():
    with pytest.raises(ValueError, match=r"Unknown GLUE task 'mnli-x'.*cola, sst2, mrpc"): load_glue('mnli-x', glue_dir=FIX)


def test_missing_split_names_the_file(glue_copy):
    (glue_copy/'RTE/dev.tsv').unlink()
    with pytest.raises(FileNotFoundError, match=r'RTE/dev\.tsv.*--glue_dir'): load_glue('rte', glue_dir=glue_copy)
    with pytest.raises(FileNotFoundError, match='--practice'): load_glue('rte', glue_dir=glue_copy/'nowhere')


def test_wrong_column_count_names_file_and_line(glue_copy):
    p = glue_copy/'MNLI/dev_matched.tsv'
    lines = p.read_text().splitlines(); lines[2] = '\t'.join(lines[2].split('\t')[:-1])   # drop gold_label of row 2
    p.write_text('\n'.join(lines) + '\n')
    with pytest.raises(GlueFormatError, match=r'dev_matched\.tsv:3: 15 columns, expected 16.*re-download'):
        load_glue('mnli', glue_dir=glue_copy)


def test_bad_labels_and_headers(glue_copy):
    p = glue_copy/'RTE/train.tsv'
    p.write_text(p.read_text().replace('\tentailment\n', '\tentails\n'))
    with pytest.raises(GlueFormatError, match=r"train\.tsv:3: label 'entails' is not one of 'entailment', 'not_entailment'"):
        load_glue('rte', glue_dir=glue_copy)
    s = glue_copy/'STS-B/dev.tsv'
    s.write_text(s.read_text().replace('\t4.750\n', '\t7.5\n'))
    with pytest.raises(GlueFormatError, match=r"dev\.tsv:3: STS-B score '7.5' is not a number in \[0, 5\]"):
        load_glue('stsb', glue_dir=glue_copy)
    q = glue_copy/'QNLI/test.tsv'
    q.write_text(q.read_text().replace('index\tquestion', 'index\tquery', 1))
    with pytest.raises(GlueFormatError, match=r"test\.tsv:1: header .* lacks column\(s\) \['question'\]"):
        load_glue('qnli', glue_dir=glue_copy)
    c = glue_copy/'CoLA/test.tsv'
    c.write_text(c.read_text().replace('\n1\t', '\none\t'))
    with pytest.raises(GlueFormatError, match=r"test\.tsv:3: index 'one' is not an integer"): load_glue('cola', glue_dir=glue_copy)


def test_hub_offline_fails_fast_and_says_what_to_do(monkeypatch):
    monkeypatch.setenv('HF_DATASETS_OFFLINE', '1')
    t = time.time()
    with pytest.raises(ConnectionError, match=r'(?s)HF_DATASETS_OFFLINE is set.*--glue_dir GLUE_DIR.*--practice'): load_glue('rte')
    assert time.time() - t < 10
    def no_network(*a, **k): raise ConnectionError('Couldn\'t reach the hub')
    monkeypatch.setattr(datasets, 'load_dataset', no_network)
    with pytest.raises(ConnectionError, match=r"(?s)nyu-mll/glue.*reach the hub.*--glue_dir"): load_glue('sst2')


def test_hub_columns_are_standardised(monkeypatch, capsys):
    "The hub's own column and split names (premise/hypothesis, validation_matched, question1, ...) map to ours."
    def fake(name, config):
        assert name == 'nyu-mll/glue'
        if config == 'ax': return DatasetDict(test=Dataset.from_dict({'premise': ['p'], 'hypothesis': ['h'], 'label': [-1], 'idx': [0]}))
        if config == 'mnli':
            split = lambda n, lab: Dataset.from_dict({'premise': ['a'] * n, 'hypothesis': ['b'] * n, 'label': [lab] * n, 'idx': list(range(n))})
            return DatasetDict(train=split(4, 2), validation_matched=split(2, 1), validation_mismatched=split(3, 0),
                               test_matched=split(2, -1), test_mismatched=split(1, -1))
        if config == 'qqp':
            split = lambda q2, lab: Dataset.from_dict({'question1': ['q?'] * len(q2), 'question2': q2, 'label': [lab] * len(q2), 'idx': list(range(len(q2)))})
            return DatasetDict(train=split(['x?', '', 'y?'], 1), validation=split(['z?'], 0), test=split(['w?', 'v?'], -1))
        if config == 'stsb':
            return DatasetDict(train=Dataset.from_dict({'sentence1': ['a'], 'sentence2': ['b'], 'label': [3.2], 'idx': [0]}))
        return DatasetDict(train=Dataset.from_dict({'sentence': ['fine'], 'label': [1], 'idx': [0]}))
    monkeypatch.setattr(datasets, 'load_dataset', fake)
    m = load_glue('mnli')
    assert (sorted(m.dev), sorted(m.test), m.source) == (['dev_matched', 'dev_mismatched'], ['ax', 'test_matched', 'test_mismatched'], 'nyu-mll/glue')
    assert m.train.column_names == ['idx', 'sentence1', 'sentence2', 'label'] and m.train[0]['sentence2'] == 'b'
    assert (len(m.dev['dev_mismatched']), col(m.test['ax'], 'sentence1')) == (3, ['p'])
    q = load_glue('qqp')
    assert col(q.train, 'sentence2') == ['x?', 'y?'] and 'dropped 1 row(s)' in capsys.readouterr().out
    assert q.train.features == glue_features(False)
    assert load_glue('stsb').train.features['label'].dtype == 'float32'
    s = load_glue('sst2')
    assert (s.train[0]['sentence1'], s.train[0]['sentence2'], s.train[0]['label']) == ('fine', '', 1)


# ---- truncation, doubling, tokenization -----------------------------------------------------------------------------

def test_truncate_pair_trims_the_longer_segment():
    rng = random.Random(0)
    for _ in range(300):
        la, lb, m = rng.randrange(0, 40), rng.randrange(0, 40), rng.randrange(1, 50)
        a, b = truncate_pair(range(la), range(100, 100 + lb), m)
        if la + lb <= m: assert (len(a), len(b)) == (la, lb); continue
        # closed form of "remove from the longer one, B on a tie": A keeps at least ceil(m/2) when it is long enough
        ka = min(la, max(m - lb, (m + 1) // 2))
        assert (len(a), len(b)) == (ka, m - ka)
        assert a == list(range(ka)) and b == list(range(100, 100 + m - ka))   # tokens dropped from the end


def test_double_unordered_swaps_each_pair():
    ds = Dataset.from_dict({'idx': [7, 8, 9], 'sentence1': ['a1', 'b1', 'c1'], 'sentence2': ['a2', 'b2', 'c2'],
                            'label': [0.5, 4.0, 2.0]}, features=glue_features(True))
    dd = double_unordered(ds)
    assert len(dd) == 6 and dd.features == ds.features
    assert list(zip(col(dd, 'sentence1'), col(dd, 'sentence2'))) == [('a1', 'a2'), ('a2', 'a1'), ('b1', 'b2'), ('b2', 'b1'), ('c1', 'c2'), ('c2', 'c1')]
    assert col(dd, 'label') == [0.5, 0.5, 4.0, 4.0, 2.0, 2.0] and col(dd, 'idx') == [7, 7, 8, 8, 9, 9]


@pytest.fixture(scope='module')
def tok():
    from electra_gdes.data import bert_uncased_tokenizer
    return bert_uncased_tokenizer()


def test_glue_tokenize_pairs_truncate_bert_style(tok):
    t = load_glue('mrpc', glue_dir=FIX)
    enc = glue_tokenize(t.train, tok, max_length=24)
    assert enc.column_names == ['idx', 'label', 'input_ids', 'token_type_ids', 'attention_mask']
    for row, s1, s2 in zip(enc, col(t.train, 'sentence1'), col(t.train, 'sentence2')):
        a, b = tok(s1, add_special_tokens=False)['input_ids'], tok(s2, add_special_tokens=False)['input_ids']
        a, b = truncate_pair(a, b, 24 - 3)
        assert row['input_ids'] == [tok.cls_token_id, *a, tok.sep_token_id, *b, tok.sep_token_id]
        assert row['token_type_ids'] == [0] * (len(a) + 2) + [1] * (len(b) + 1)
        assert len(row['input_ids']) == 24 and row['attention_mask'] == [1] * 24
    short = glue_tokenize(load_glue('rte', glue_dir=FIX).train, tok, max_length=128)
    assert len({len(r) for r in col(short, 'input_ids')}) > 1                     # not padded


def test_glue_tokenize_single_sentence_and_collate(tok):
    enc = glue_tokenize(load_glue('cola', glue_dir=FIX).train, tok, max_length=8)
    ids = col(enc, 'input_ids')
    assert all(i[0] == tok.cls_token_id and i[-1] == tok.sep_token_id and i.count(tok.sep_token_id) == 1 for i in ids)
    assert max(map(len, ids)) == 8 and all(set(t) == {0} for t in col(enc, 'token_type_ids'))
    b = glue_collate([enc[0], enc[2]], pad_token_id=tok.pad_token_id)
    n = len(enc[2]['input_ids'])
    assert b['input_ids'].shape == (2, 8) and b['attention_mask'][1].tolist() == [1] * n + [0] * (8 - n)
    assert b['input_ids'][1, n:].tolist() == [tok.pad_token_id] * (8 - n) and b['labels'].tolist() == [1, 0]
    s = glue_tokenize(load_glue('stsb', glue_dir=FIX).train, tok, max_length=32)
    assert glue_collate([s[0], s[1]], tok.pad_token_id)['labels'].dtype.is_floating_point


# ---- the synthetic practice suite ----------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def practice(tmp_path_factory):
    texts = (FIX/'corpus.txt').read_text().split('\n\n')
    return make_practice_glue(tmp_path_factory.mktemp('p')/glue_data.PRACTICE_FOLDER, texts, n_train=60, n_dev=30, n_test=12, seed=1)


def test_practice_suite_has_the_official_layout(practice):
    tsvs = lambda d: sorted(str(p.relative_to(d)) for p in d.rglob('*.tsv'))
    assert tsvs(practice) == tsvs(FIX)                                  # same folders and file names
    for rel in tsvs(FIX):
        fix, prac = (FIX/rel).read_text(encoding='utf-8-sig').splitlines(), (practice/rel).read_text().splitlines()
        if rel.startswith('CoLA/') and not rel.endswith('test.tsv'):
            assert len(prac[0].split('\t')) == 4 and prac[0].split('\t')[1] in '01'
        else: assert prac[0] == fix[0], rel                             # identical headers
        assert {len(l.split('\t')) for l in prac} == {len(fix[0].split('\t'))}, rel
    assert 'NOT GLUE' in (practice/'README.md').read_text() and is_practice_suite(practice)
    assert 'SYNTHETIC' in practice.name


def test_practice_suite_labels_follow_their_rules(practice, capsys):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        tasks = {n: load_glue(n, glue_dir=practice) for n in GLUE_SPECS}
    assert sum('SYNTHETIC' in str(x.message) and 'never be reported' in str(x.message) for x in w) == len(GLUE_SPECS)
    for name, t in tasks.items():
        assert t.synthetic and 'SYNTHETIC' in repr(t)
        splits = {'train': t.train, **t.dev}
        assert len(t.train) == (60 - 1 if name == 'qqp' else 60) and all(len(d) == 30 for d in t.dev.values())
        for ds in t.test.values(): assert col(ds, 'idx') == list(range(12)) and set(col(ds, 'label')) == {-1}
        for split, ds in splits.items():
            rows = list(zip(col(ds, 'sentence1'), col(ds, 'sentence2'), col(ds, 'label')))
            for a, b, y in rows:
                if name == 'sst2': assert y == sentiment_rule(a)
                elif name in ('mrpc', 'qqp'): assert y == paraphrase_rule(a, b)
                elif name == 'stsb': assert y == pytest.approx(similarity_rule(a, b), abs=1e-3)
                elif name == 'mnli': assert NLI3[y] == entailment_rule(a, b)
                elif name == 'qnli': assert ('entailment', 'not_entailment')[y] == qnli_rule(a, b)
                elif name == 'rte': assert y == int(entailment_rule(a, b) != 'entailment')
                elif name == 'wnli': assert y == int(entailment_rule(a, b) == 'entailment')
            if name != 'stsb' and split == 'train':
                assert len(set(r[2] for r in rows)) == t.num_labels, (name, 'every class occurs')
    assert 'dropped 1 row(s) with an empty question' in capsys.readouterr().out    # like the real QQP train file


def test_practice_cola_corruption_is_word_order(practice):
    "Acceptable rows are corpus sentences; unacceptable ones are corpus sentences with their words reversed."
    from electra_gdes.glue_data import acceptability_rule, corpus_sentences
    corpus = set(corpus_sentences((FIX/'corpus.txt').read_text().split('\n\n')))
    rows = data_rows(practice/'CoLA/train.tsv', header=False) + data_rows(practice/'CoLA/dev.tsv', header=False)
    for src, label, star, sentence in rows:
        assert star == ('*' if label == '0' else '')
        original = sentence if label == '1' else ' '.join(reversed(sentence.split()))
        assert original in corpus and acceptability_rule(sentence, original) == int(label)
    assert {r[1] for r in rows} == {'0', '1'}


def test_practice_sst2_is_learnable_from_its_words(practice):
    "A bag-of-words classifier trained on 60 rows gets the dev set nearly right: the rule is learnable."
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression
    with pytest.warns(UserWarning, match='SYNTHETIC'): t = load_glue('sst2', glue_dir=practice)
    vec = CountVectorizer()
    clf = LogisticRegression(C=10).fit(vec.fit_transform(col(t.train, 'sentence1')), col(t.train, 'label'))
    assert clf.score(vec.transform(col(t.dev['dev'], 'sentence1')), col(t.dev['dev'], 'label')) >= 0.9


def test_practice_splits_use_disjoint_sentences(practice):
    with pytest.warns(UserWarning, match='SYNTHETIC'): t = load_glue('rte', glue_dir=practice)
    assert not set(col(t.train, 'sentence1')) & set(col(t.dev['dev'], 'sentence1'))


def test_make_practice_glue_is_atomic_and_safe(tmp_path):
    texts = (FIX/'corpus.txt').read_text().split('\n\n')
    other = tmp_path/'mine'; other.mkdir(); (other/'keep.txt').write_text('x')
    with pytest.raises(FileExistsError, match='not a practice suite'): make_practice_glue(other, texts)
    with pytest.raises(ValueError, match='at least 30'): make_practice_glue(tmp_path/'p', ['Too short. Far too short.'])
    assert sorted(os.listdir(tmp_path)) == ['mine']                     # nothing half-written left behind
    p = make_practice_glue(tmp_path/'p', texts, n_train=10, n_dev=5, n_test=5, seed=3)
    first = (p/'RTE/train.tsv').read_text()
    make_practice_glue(p, texts, n_train=10, n_dev=5, n_test=5, seed=3)  # regenerated in place, deterministic
    assert (p/'RTE/train.tsv').read_text() == first and sorted(os.listdir(tmp_path)) == ['mine', 'p']


def test_load_glue_practice_uses_cache_dir(tmp_path, monkeypatch):
    texts = (FIX/'corpus.txt').read_text().split('\n\n')
    monkeypatch.setattr(glue_data, '_default_texts', lambda cache_dir: texts)
    with pytest.warns(UserWarning, match='SYNTHETIC'):
        t = load_glue('wnli', practice=True, cache_dir=tmp_path)
    assert t.synthetic and Path(t.source) == tmp_path/glue_data.PRACTICE_FOLDER
    sizes = glue_data.PRACTICE_SIZES
    assert (len(t.train), len(t.dev['dev']), len(t.test['test'])) == (sizes['n_train'], sizes['n_dev'], sizes['n_test'])
    with pytest.raises(ValueError, match='not both'): load_glue('wnli', glue_dir=FIX, practice=True)


def test_an_older_practice_suite_is_written_again(tmp_path, monkeypatch):
    "A suite in the cache made with other sizes (an earlier release's 300 rows) or an older version is replaced, a current one kept."
    texts = (FIX/'corpus.txt').read_text().split('\n\n')
    monkeypatch.setattr(glue_data, '_default_texts', lambda cache_dir: texts)
    old = make_practice_glue(tmp_path/glue_data.PRACTICE_FOLDER, texts, n_train=30, n_dev=10, n_test=10)
    with pytest.warns(UserWarning, match='SYNTHETIC'): t = load_glue('sst2', practice=True, cache_dir=tmp_path)
    assert len(t.train) == glue_data.PRACTICE_SIZES['n_train'] and Path(t.source) == old
    made = json.loads((old/'practice.json').read_text())
    assert made['version'] == glue_data.PRACTICE_VERSION
    (old/'practice.json').write_text(json.dumps(dict(made, version=glue_data.PRACTICE_VERSION - 1)))
    glue_data.practice_suite(tmp_path)
    assert json.loads((old/'practice.json').read_text())['version'] == glue_data.PRACTICE_VERSION   # written again
    stamp = (old/'SST-2'/'train.tsv').stat().st_mtime_ns
    glue_data.practice_suite(tmp_path)
    assert (old/'SST-2'/'train.tsv').stat().st_mtime_ns == stamp   # current: kept
