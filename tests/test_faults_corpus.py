"""Bad corpus input is a bad option, through the installed `electra-pretrain`: a file that is not UTF-8, a .png, a glob
matching nothing, a corpus of blank lines each exit 2 with one line and no traceback, before the run folder is made
(no lock left); non-.txt files in a corpus folder are skipped and counted in one line."""
from pathlib import Path
import pytest
from cli_helpers import script, tiny_pretrain_args, tiny_corpus
from electra_gdes.run_lock import lock_path

PNG = b'\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89'

def _bad(tmp_path, corpus, *words):
    r = script('electra-pretrain', *tiny_pretrain_args(tmp_path, corpus=corpus))
    assert r.returncode == 2 and 'Traceback' not in r.stderr, r.stderr[-3000:]
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith('electra-pretrain: error: ') and all(w in line for w in words), line
    run = tmp_path/'out'/'r'
    assert not run.exists() and not lock_path(run).exists()
    return line

def test_a_file_that_is_not_utf8(tmp_path):
    (tmp_path/'latin1.txt').write_bytes('Un café au lait. '.encode('latin1') * 20)
    _bad(tmp_path, tmp_path/'latin1.txt', 'is not UTF-8 text', "byte b'\\xe9' at offset 6", 'iconv -f latin1 -t utf-8')

def test_a_png(tmp_path):
    (tmp_path/'logo.png').write_bytes(PNG)
    _bad(tmp_path, tmp_path/'logo.png', f"{tmp_path/'logo.png'} is not UTF-8 text")

def test_a_glob_matching_nothing(tmp_path):
    _bad(tmp_path, str(tmp_path/'texts'/'*.txt'), 'No file matches the corpus glob', 'quote it')

def test_a_missing_path(tmp_path):
    _bad(tmp_path, tmp_path/'no_such_corpus', 'does not exist')

def test_only_blank_lines(tmp_path):
    (tmp_path/'blank').mkdir(); (tmp_path/'blank'/'a.txt').write_text('\n   \n\t\n\n')
    _bad(tmp_path, tmp_path/'blank', 'has no text, only blank lines')

def test_skipped_files_are_counted_in_one_line(tmp_path):
    corpus = tiny_corpus(tmp_path)
    (corpus/'logo.png').write_bytes(PNG); (corpus/'notes.md').write_text('# notes'); (corpus/'sub').mkdir()
    (corpus/'sub'/'data.csv').write_text('a,b\n')
    r = script('electra-pretrain', *tiny_pretrain_args(tmp_path, steps=1, corpus=corpus))
    assert r.returncode == 0, r.stderr[-3000:]
    lines = [l for l in r.stdout.splitlines() if l.startswith('Corpus ')]
    assert lines == [f'Corpus {corpus}: 12 .txt file(s) read, 3 other file(s) skipped (logo.png, notes.md, sub/data.csv); '
                     'only .txt files are read from a folder (give a glob to read others).'], r.stdout[-2000:]
