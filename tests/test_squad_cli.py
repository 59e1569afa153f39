"""`electra-squad` end to end: the installed script in a subprocess on SQuAD 2.0 of the practice set (two seeded runs,
best-run selection, official prediction files, summary, the export answering through a transformers pipeline) and on bad
input (one message, exit status 1 or 2, nothing written); then, in this process to save the start-up time, a resumed
sweep, the exact result line of non-synthetic 1.1 data and the other bad inputs through the same `main`."""
import json, re, shutil, warnings
from pathlib import Path

import pytest
from cli_helpers import script
from helpers import tiny_electra_checkpoint, tiny_tokenizer

from electra_gdes.squad_data import make_practice_squad, squad_json_rows, squad_v1_eval, squad_v2_eval

CORPUS = Path(__file__).parent/'fixtures'/'squad'/'corpus.txt'
SMALL = ['--epochs', '1', '--batch_size', '8', '--lr', '1e-3', '--max_length', '64', '--doc_stride', '16', '--max_query_length', '20']


def squad(*args, cwd): return script('electra-squad', *args, cwd=cwd)


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp('squad')
    texts = CORPUS.read_text().split('\n\n')
    practice = make_practice_squad(d/'practice', texts, n_train=40, n_dev=16)
    words = sorted({w.lower() for t in texts for w in t.replace('"', ' ').split()} | set('0123456789.,$?!-;:()'))
    disc = tiny_electra_checkpoint(d/'disc', tiny_tokenizer(words), hidden_size=32)
    common = ['--checkpoint', disc, '--squad_dir', practice, '--version', '2.0', '--output_dir', d/'out', *SMALL]
    first = squad(*common, '--runs', '2', cwd=d)
    return d, practice, disc, common, first


def last_line(r): return r.stdout.strip().splitlines()[-1]


def test_v2_sweep_outputs(setup):
    d, practice, disc, common, r = setup
    assert r.returncode == 0, r.stderr[-3000:]
    line = last_line(r)
    num = r'\d+\.\d\d'
    assert re.fullmatch(rf'practice set v2\.0 \(SYNTHETIC, not SQuAD\) dev: EM {num} F1 {num} \(HasAns EM {num} F1 {num}, '
                        rf'NoAns EM {num} F1 {num}, no-answer threshold -?{num}\d\) \[best of 2 run\(s\): run \d, seed 4\d\]', line), line
    assert 'SQuAD v2.0 dev' not in r.stdout   # the practice set is never reported as SQuAD
    g = d/'out'/'v2.0'
    dev = squad_json_rows(practice/'dev-v2.0.json', '2.0')
    preds, odds = json.loads((g/'predictions.json').read_text()), json.loads((g/'null_odds.json').read_text())
    assert set(preds) == set(odds) == {q['id'] for q in dev}   # the official formats: id -> text, id -> no-answer score
    assert all(isinstance(v, str) for v in preds.values()) and all(isinstance(v, float) for v in odds.values())
    results = [json.loads(l) for l in (g/'results.jsonl').read_text().splitlines()]
    assert sorted(x['run'] for x in results) == [0, 1] and sorted(x['seed'] for x in results) == [42, 43]
    best = max(results, key=lambda x: x['score'])
    # the official v2.0 figures of the written predictions are the best run's
    assert squad_v2_eval(dev, preds)['f1'] == pytest.approx(best['metrics']['f1'])
    assert json.loads((g/'best'/'export.json').read_text())['run'] == best['run']
    assert {'summary.md', 'summary.csv', 'summary.png', 'eval.json', 'config.json'} <= {p.name for p in g.iterdir()}
    assert 'published' not in (g/'summary.md').read_text()   # no published SQuAD figures beside synthetic scores
    assert 'SYNTHETIC' in (g/'best'/'README.md').read_text()


def test_export_answers_in_a_pipeline(setup):
    "`pipeline('question-answering', model=<group>/best, trust_remote_code=True)` gives the run's own dev predictions."
    d, practice, *_ = setup
    from transformers import pipeline
    g = d/'out'/'v2.0'
    qa = pipeline('question-answering', model=str(g/'best'), trust_remote_code=True, device='cpu')
    preds = json.loads((g/'predictions.json').read_text())
    dev = squad_json_rows(practice/'dev-v2.0.json', '2.0')
    assert {q['id']: qa(question=q['question'], context=q['context'])['answer'] for q in dev} == preds


def run_main(capsys, *args) -> str:
    "stdout of `electra_gdes.squad.main(args)` in this process (it must succeed)."
    from electra_gdes.squad import main
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        main([str(a) for a in args])
    return capsys.readouterr().out


def test_resume_and_the_v1_result_line(setup, tmp_path, capsys):
    d, practice, disc, common, first = setup
    again = run_main(capsys, *common, '--runs', '2')
    assert '2 runs already finished, 0 to go' in again and again.strip().splitlines()[-1] == last_line(first)
    official = tmp_path/'squad'   # the same files without the practice marker: reported as SQuAD
    official.mkdir()
    for f in ('train-v1.1.json', 'dev-v1.1.json'): shutil.copy(practice/f, official/f)
    line = run_main(capsys, '--checkpoint', disc, '--squad_dir', official, '--output_dir', tmp_path/'out', *SMALL).strip().splitlines()[-1]
    assert re.fullmatch(r'SQuAD v1\.1 dev: EM \d+\.\d\d F1 \d+\.\d\d \[best of 1 run\(s\): run 0, seed 42\]', line), line
    g = tmp_path/'out'/'v1.1'
    assert not (g/'null_odds.json').exists()
    em, f1 = (float(x) for x in re.findall(r'(?:EM|F1) (\d+\.\d\d)', line))
    m = squad_v1_eval(squad_json_rows(official/'dev-v1.1.json', '1.1'), json.loads((g/'predictions.json').read_text()))
    assert (round(m['exact_match'], 2), round(m['f1'], 2)) == (em, f1)
    assert 'ELECTRA-Base (published)' in (g/'summary.md').read_text()


def _untouched(out: Path): return not out.exists() and not any(out.parent.glob(f'.{out.name}*'))


def test_malformed_json_fails_before_writing(setup, tmp_path):
    d, practice, disc, *_ = setup
    bad = shutil.copytree(practice, tmp_path/'bad')
    (bad/'train-v1.1.json').write_text((bad/'train-v1.1.json').read_text()[:-50])   # cut short
    r = squad('--checkpoint', disc, '--squad_dir', bad, '--output_dir', tmp_path/'out', *SMALL, cwd=tmp_path)
    assert r.returncode == 1 and 'Traceback' not in r.stderr
    msg = r.stderr[r.stderr.index('electra-squad: error:'):]
    assert 'cannot be used (1 problem(s), found before anything trained)' in msg and f'{bad}/train-v1.1.json:1:' in msg
    assert 'not valid JSON' in msg and _untouched(tmp_path/'out')


def test_model_without_tokenizer_fails_before_writing(setup, tmp_path):
    d, practice, disc, *_ = setup
    bare = shutil.copytree(disc, tmp_path/'bare')
    for f in bare.iterdir():
        if 'token' in f.name or f.name == 'vocab.txt': f.unlink()
    msg = _main_error('--checkpoint', bare, '--squad_dir', practice, '--output_dir', tmp_path/'out', *SMALL)
    assert msg.startswith('electra-squad: error:') and 'has no tokenizer' in msg and _untouched(tmp_path/'out')


def test_bad_option_exits_2():
    r = script('electra-squad', '--version', '3.0')
    assert r.returncode == 2 and "argument --version: invalid choice: '3.0'" in r.stderr


def _main_error(*args) -> str:
    from electra_gdes.squad import main
    with warnings.catch_warnings(), pytest.raises(SystemExit) as e:
        warnings.simplefilter('ignore')
        main([str(a) for a in args])
    return str(e.value.code)


def test_answer_not_at_its_offset(setup, tmp_path):
    d, practice, disc, *_ = setup
    bad = shutil.copytree(practice, tmp_path/'bad')
    data = json.loads((bad/'dev-v1.1.json').read_text())
    qa = data['data'][0]['paragraphs'][0]['qas'][0]
    qa['answers'][0]['answer_start'] += 1
    (bad/'dev-v1.1.json').write_text(json.dumps(data))
    msg = _main_error('--checkpoint', disc, '--squad_dir', bad, '--output_dir', tmp_path/'out', *SMALL)
    assert msg.startswith('electra-squad: error: The SQuAD 1.1 data') and f"question {qa['id']!r}: answer" in msg
    assert 'is not the context\'s text at answer_start' in msg and _untouched(tmp_path/'out')


def test_question_longer_than_max_length(setup, tmp_path):
    d, practice, disc, *_ = setup
    bad = shutil.copytree(practice, tmp_path/'bad')
    data = json.loads((bad/'train-v1.1.json').read_text())
    qa = data['data'][0]['paragraphs'][0]['qas'][0]
    qa['question'] = ' '.join(['what'] * 70) + '?'
    (bad/'train-v1.1.json').write_text(json.dumps(data))
    msg = _main_error('--checkpoint', disc, '--squad_dir', bad, '--output_dir', tmp_path/'out', *SMALL)
    assert f"question(s) longer than --max_length 64 allows" in msg and f"question {qa['id']!r} has 71 tokens" in msg
    assert _untouched(tmp_path/'out')


def test_hub_source_on_local_data(setup, monkeypatch):
    "The hub path (`rajpurkar/squad_v2`) on a local DatasetDict in the hub's layout: the same rows, checked, not synthetic."
    import datasets
    from electra_gdes.squad_data import SquadDataError, load_squad
    d, practice, *_ = setup
    rows = {s: squad_json_rows(practice/f'{s}-v2.0.json', '2.0') for s in ('train', 'dev')}
    hub = lambda rs: datasets.Dataset.from_list([{k: r[k] for k in ('id', 'title', 'context', 'question', 'answers')} for r in rs])
    asked = []
    def load_dataset(name, *a, **k):
        asked.append(name)
        return datasets.DatasetDict(train=hub(rows['train']), validation=hub(rows['dev']))
    monkeypatch.setattr(datasets, 'load_dataset', load_dataset)
    s = load_squad('2.0')
    assert asked == ['rajpurkar/squad_v2'] and (s.source, s.synthetic, s.name) == ('rajpurkar/squad_v2', False, 'SQuAD v2.0')
    assert [r['answers'] for r in s.dev] == [r['answers'] for r in rows['dev']] and len(s.train) == len(rows['train'])
    rows['dev'][0] = dict(rows['dev'][0], id=rows['dev'][1]['id'])   # a duplicate id: named with the hub split
    with pytest.raises(SquadDataError, match=r"rajpurkar/squad_v2 validation: question id .* appears twice"): load_squad('2.0')
    monkeypatch.undo()
    with pytest.raises(SquadDataError, match=r'(?s)Could not load SQuAD 1\.1 from the Hugging Face hub \(rajpurkar/squad\).*--squad_dir'):
        load_squad('1.1')   # HF_DATASETS_OFFLINE=1 (conftest): fails at once, saying what to pass instead
