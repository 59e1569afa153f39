"""The official SQuAD metrics, by hand: normalisation (case, punctuation, articles, whitespace), EM and token F1 with the
max over gold answers, v1.1's and v2.0's different empty-answer rules, v2.0's HasAns / NoAns splits and best
thresholds, and the dev-chosen no-answer threshold. Every expected number is worked out in the comments."""
import io, contextlib
import pytest
from electra_gdes.squad_data import (exact_match, f1_v1, f1_v2, find_best_thresh, normalize_answer, squad_v1_eval,
                                     squad_v2_eval)


def row(qid, *answers): return dict(id=qid, answers={'text': list(answers), 'answer_start': [0] * len(answers)})


@pytest.mark.parametrize('text,normal', [
    ('The Eiffel Tower', 'eiffel tower'),           # lower case, the leading article dropped
    ('a  cat\tand\nthe dog', 'cat and dog'),        # articles inside, whitespace of any kind collapsed
    ('Theatre, then Athens.', 'theatre then athens'),  # 'the' inside a word stays; punctuation goes
    ('An apple', 'apple'),
    ("rock-'n'-roll", 'rocknroll'),                 # punctuation removed without a space: the pieces join
    ('U.S.A.', 'usa'),
    ('$1,000.50', '100050'),
    ('the', ''), ('', ''), ('  ', ''),
    ('“quoted” – dash', '“quoted” – dash'),         # typographic quotes and dashes are not string.punctuation: kept
])
def test_normalize(text, normal): assert normalize_answer(text) == normal


def test_exact_and_f1_by_hand():
    assert exact_match('The Eiffel Tower!', 'eiffel  tower') == 1
    assert exact_match('Eiffel', 'Eiffel Tower') == 0
    # 'eiffel' vs 'eiffel tower': 1 shared, precision 1/1, recall 1/2 -> F1 2 * 1 * 0.5 / 1.5 = 2/3
    assert f1_v1('Eiffel', 'the Eiffel Tower') == pytest.approx(2 / 3)
    assert f1_v2('Eiffel', 'the Eiffel Tower') == pytest.approx(2 / 3)
    # multiset overlap: 'a b b c' -> tokens b b c; gold 'b c c' -> shared b, c = 2; P 2/3, R 2/3 -> F1 2/3
    assert f1_v1('a b b c', 'b c c') == pytest.approx(2 / 3)
    # nothing shared
    assert f1_v1('Paris', 'London') == f1_v2('Paris', 'London') == 0


def test_empty_answers_differ_between_versions():
    # v1.1: no token in common -> 0, even for two empty answers; v2.0: either side empty -> 1 only if both are
    assert f1_v1('', '') == 0 and f1_v2('', '') == 1
    assert f1_v2('the', '') == 1          # 'the' normalises to nothing: an empty prediction
    assert f1_v2('', 'Paris') == 0 and f1_v2('Paris', '') == 0
    assert exact_match('', '') == 1 and exact_match('An', '') == 1


def test_v1_max_over_golds_and_missing_predictions():
    rows = [row('a', 'Denver Broncos', 'the Broncos'), row('b', 'Santa Clara, California'), row('c', '1947')]
    with contextlib.redirect_stderr(io.StringIO()) as err:
        m = squad_v1_eval(rows, {'a': 'Broncos', 'b': 'Santa Clara'})
    # a: EM 1 against 'the Broncos'; F1 1. b: EM 0; tokens santa clara vs santa clara california: P 1, R 2/3 -> F1 0.8.
    # c: no prediction -> 0, and it still counts in the total of 3
    assert m['exact_match'] == pytest.approx(100 / 3)
    assert m['f1'] == pytest.approx(100 * (1 + 0.8) / 3)
    assert 'Unanswered question c will receive score 0.' in err.getvalue()


def test_v2_splits_and_best_thresholds():
    rows = [row('h1', 'the Nile river'), row('h2', '1947'), row('n1'), row('n2'), row('n3')]
    preds = {'h1': 'Nile', 'h2': '1947', 'n1': '', 'n2': 'Rome', 'n3': 'Oslo'}
    m = squad_v2_eval(rows, preds)
    # h1: EM 0, F1 (P 1, R 1/2) 2/3; h2: 1, 1; n1 right (empty), n2 and n3 wrong
    assert m['exact'] == pytest.approx(100 * 2 / 5) and m['f1'] == pytest.approx(100 * (2 / 3 + 2) / 5)
    assert (m['HasAns_total'], m['NoAns_total'], m['total']) == (2, 3, 5)
    assert m['HasAns_exact'] == 50 and m['HasAns_f1'] == pytest.approx(100 * (2 / 3 + 1) / 2)
    assert m['NoAns_exact'] == m['NoAns_f1'] == pytest.approx(100 / 3)
    # no-answer scores: answering in increasing order from "all no answer" (3 of 5 right): h2 (-4) +1 -> 4; n2 (-1) -1 -> 3;
    # h1 (0) +0 EM (+2/3 F1); n1 (2) +0 (its prediction is empty); n3 (3) -1. Best EM 4/5 at -4; best F1 4/5 at -4 too
    # (after h1: 3 + 2/3 < 4)
    odds = {'h2': -4.0, 'n2': -1.0, 'h1': 0.0, 'n1': 2.0, 'n3': 3.0}
    m = squad_v2_eval(rows, preds, odds)
    assert (m['best_exact'], m['best_exact_thresh']) == (80.0, -4.0)
    assert (m['best_f1'], m['best_f1_thresh']) == (pytest.approx(80.0), -4.0)
    # applying a threshold of -4 ourselves gives the same figure
    final = {q: '' if odds[q] > -4.0 else p for q, p in preds.items()}
    assert squad_v2_eval(rows, final)['exact'] == 80.0
    # find_best_thresh on its own: when no question is worth answering, the script keeps 0.0 as the threshold
    score, thresh = find_best_thresh({'n2': 'Rome'}, {'n2': 0}, {'n2': -1.0}, {'n2': False})
    assert (score, thresh) == (100.0, 0.0)


def test_v2_missing_prediction_is_skipped():
    # evaluate-v2.0.py leaves a question without a prediction out of every total (v1.1 counts it as 0)
    rows = [row('a', 'x'), row('b')]
    with contextlib.redirect_stderr(io.StringIO()) as err:
        m = squad_v2_eval(rows, {'a': 'x'})
    assert (m['exact'], m['total']) == (100.0, 1) and 'Missing prediction for b' in err.getvalue()
