"""A run keeps its data. With a trained tokenizer (`--tokenizer train`: a WordPiece, which training again need not
reproduce) a resumed run uses the run's own copy whatever the tokenizer cache holds, and so do its exports and
`electra-export`; a resume whose corpus changed is refused (exit 1, one line) and leaves the run as it was."""
import json
from transformers import AutoTokenizer, BertTokenizerFast
from cli_helpers import TEXT, checksums, script, tiny_pretrain_args
from electra_gdes.logs import read_log

def _steps(args, n) -> list:
    a = list(args); a[a.index('--steps') + 1] = n
    return a

def test_a_resumed_run_keeps_its_tokenizer_and_refuses_another_corpus(tmp_path):
    args = [*map(str, tiny_pretrain_args(tmp_path)), '--tokenizer', 'train', '--vocab_size', '200']
    r = script('electra-pretrain', *args)
    assert r.returncode == 0, r.stderr[-3000:]
    run = tmp_path/'out'/'r'
    vocab, record = AutoTokenizer.from_pretrained(run/'tokenizer').get_vocab(), json.loads((run/'data.json').read_text())
    assert record['tokenizer_tokens'] == len(vocab) and record['examples'] > 0

    # the tokenizer cache now holds another WordPiece of the same size (two words swapped), as training again may give
    [cached] = (tmp_path/'cache'/'tokenizers').iterdir()
    a, b = 'union', 'people'
    assert a in vocab and b in vocab
    BertTokenizerFast(vocab={**vocab, a: vocab[b], b: vocab[a]}, do_lower_case=True).save_pretrained(cached)
    r = script('electra-pretrain', *_steps(args, 8), '--resume', '--allow_change', 'steps')
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads((run/'data.json').read_text()) == record and read_log(run/'log.csv')[-1]['step'] == 8
    assert AutoTokenizer.from_pretrained(run/'discriminator').get_vocab() == vocab   # the exports carry the run's tokenizer
    e = script('electra-export', run, '--out', tmp_path/'exported')
    assert e.returncode == 0, e.stderr[-2000:]
    assert AutoTokenizer.from_pretrained(tmp_path/'exported'/'generator').get_vocab() == vocab

    # one more document in the corpus: other examples, so the resume is refused before anything is written
    (tmp_path/'corpus'/'doc12.txt').write_text('Address number 12.\n' + TEXT.replace('. ', '.\n'))
    before = checksums(run)
    r = script('electra-pretrain', *_steps(args, 12), '--resume', '--allow_change', 'steps')
    assert r.returncode == 1, r.stderr[-3000:]
    assert 'electra-pretrain: error: cannot resume' in r.stderr and 'the corpus is not the same' in r.stderr, r.stderr[-2000:]
    assert 'restore the corpus it started with' in r.stderr and 'Traceback' not in r.stderr
    assert checksums(run) == before
