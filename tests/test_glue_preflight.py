"Preflight of a fine-tuning sweep: every selected task's files and the checkpoint are checked before the first run trains."
import contextlib, io, json, shutil, warnings
from pathlib import Path

import pytest, torch
from transformers import (DebertaV2Config, DebertaV2ForMaskedLM, ElectraForMaskedLM, ElectraForPreTraining, ElectraModel)

import helpers
from electra_gdes.config import FinetuneConfig, GLUE_TASKS
from electra_gdes.glue_data import GlueDataError, load_glue_tasks
import electra_gdes.glue_finetune as gf
from electra_gdes.glue_model import check_finetune_checkpoint
from electra_gdes.glue_finetune import check_glue_tasks, finetune_sweep, group_dir

FIX = helpers.GLUE_FIXTURES


@pytest.fixture
def glue(tmp_path):
    g = tmp_path/'GLUE'; shutil.copytree(FIX, g); return g


@pytest.fixture(scope='module')
def ckpt(tmp_path_factory):
    d = tmp_path_factory.mktemp('ckpt')
    return helpers.tiny_electra_checkpoint(d/'run'/'discriminator', helpers.tiny_tokenizer(['the', 'a', 'good', 'bad']))


def problems(glue_dir, tasks=GLUE_TASKS):
    with pytest.raises(GlueDataError) as e, contextlib.redirect_stdout(io.StringIO()): load_glue_tasks(tasks, glue_dir)
    return str(e.value)


def test_intact_folder_loads_every_task(glue):
    tasks = load_glue_tasks(GLUE_TASKS, glue)
    assert sorted(tasks) == sorted(GLUE_TASKS)
    assert sorted(tasks['mnli'].dev) == ['dev_matched', 'dev_mismatched'] and 'ax' in tasks['mnli'].test
    assert all(len(t.train) and all(map(len, t.dev.values())) and all(map(len, t.test.values())) for t in tasks.values())


@pytest.mark.parametrize('rel,edit,want', [
    ('QNLI', 'rmdir', 'QNLI: the QNLI folder is missing (it holds train.tsv, dev.tsv, test.tsv)'),
    ('MNLI/dev_mismatched.tsv', 'rm', 'MNLI/dev_mismatched.tsv'),              # MNLI's mismatched dev file
    ('MNLI/test_matched.tsv', 'rm', 'MNLI/test_matched.tsv'),
    ('RTE/dev.tsv', 'header-only', 'RTE/dev.tsv: no examples'),                # would be a datasets column error
    ('SST-2/test.tsv', 'empty', 'SST-2/test.tsv: the file is empty'),
    ('STS-B/train.tsv', 'bad-label', "STS-B score 'high'"),
    ('QQP/dev.tsv', 'bad-header', "lacks column(s) ['is_duplicate']"),
    ('WNLI/train.tsv', 'short-row', 'WNLI/train.tsv:2: 3 columns, expected 4'),
    ('diagnostic', 'rmdir', 'diagnostic set AX'),                             # AX: needed when every task is selected
])
def test_each_fault_is_named_with_its_file(glue, rel, edit, want):
    p = glue/rel
    if edit == 'rmdir': shutil.rmtree(p)
    elif edit == 'rm': p.unlink()
    elif edit == 'header-only': p.write_text(p.read_text().splitlines()[0] + '\n')
    elif edit == 'empty': p.write_text('')
    elif edit == 'bad-label':
        lines = p.read_text().splitlines(); lines[1] = '\t'.join(lines[1].split('\t')[:-1] + ['high']); p.write_text('\n'.join(lines) + '\n')
    elif edit == 'bad-header': p.write_text(p.read_text().replace('is_duplicate', 'duplicate', 1))
    elif edit == 'short-row':
        lines = p.read_text().splitlines(); lines[1] = '\t'.join(lines[1].split('\t')[:3]); p.write_text('\n'.join(lines) + '\n')
    msg = problems(glue)
    assert want in msg and '1 problem(s)' in msg, msg
    assert any(fix in msg for fix in ('download GLUE again', 'download it again', 'download the file again', 'fix or remove', 're-download')), msg


def test_all_problems_in_one_error(glue):
    shutil.rmtree(glue/'CoLA'); (glue/'MRPC/dev.tsv').write_text('')
    msg = problems(glue)
    assert 'CoLA folder is missing' in msg and 'MRPC/dev.tsv' in msg
    assert '2 problem(s)' in msg


def test_ax_only_needed_with_every_task(glue):
    shutil.rmtree(glue/'diagnostic')
    with contextlib.redirect_stdout(io.StringIO()):
        assert 'ax' not in load_glue_tasks(['mnli', 'rte'], glue)['mnli'].test
    assert 'diagnostic' in problems(glue)
    assert 'not a folder' in problems(glue.parent/'nope')


def test_practice_suite_checked_too(tmp_path):
    practice, _ = helpers.practice_suite_and_checkpoint(tmp_path, 20, 10, 5)
    (practice/'RTE/test.tsv').unlink()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        msg = problems(practice, ['rte'])
    assert 'RTE/test.tsv' in msg and f'delete {practice}' in msg


def test_sweep_fails_before_the_first_run_trains(glue, ckpt, tmp_path, monkeypatch):
    "A broken *later* task stops the sweep before the first task trains, and nothing is written."
    (glue/'WNLI/dev.tsv').write_text('index\tsentence1\tsentence2\tlabel\n')
    trained = []
    monkeypatch.setattr(gf, 'finetune_run', lambda *a, **k: trained.append(a) or {})
    cfg = FinetuneConfig(checkpoint=str(ckpt), glue_dir=str(glue), tasks=('cola', 'sst2', 'wnli'), runs=2,
                         output_dir=str(tmp_path/'out'))
    with pytest.raises(GlueDataError, match='WNLI/dev.tsv: no examples'), contextlib.redirect_stdout(io.StringIO()): finetune_sweep(cfg)
    assert trained == [] and not group_dir(cfg).exists()
    assert sorted(check_glue_tasks(cfg.__class__(**{**cfg.__dict__, 'tasks': ('cola', 'sst2')}))) == ['cola', 'sst2']


# ---- the checkpoint ----------------------------------------------------------------------------------------------

def test_discriminator_and_plain_encoder_accepted(ckpt, tmp_path):
    assert check_finetune_checkpoint(ckpt) == ['ElectraForPreTraining']
    plain = tmp_path/'plain'; ElectraModel(ElectraForPreTraining.from_pretrained(ckpt).config).save_pretrained(plain)
    assert check_finetune_checkpoint(plain) == ['ElectraModel']


def test_electra_generator_refused_naming_the_discriminator(ckpt):
    gen = ckpt.parent/'generator'
    ElectraForMaskedLM(ElectraForPreTraining.from_pretrained(ckpt).config).save_pretrained(gen)
    with pytest.raises(ValueError, match='is a generator: its config.json names ElectraForMaskedLM') as e: check_finetune_checkpoint(gen)
    assert f'--checkpoint {ckpt}' in str(e.value)


def test_deberta_generator_refused(tmp_path):
    cfg = DebertaV2Config(vocab_size=20, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    DebertaV2ForMaskedLM(cfg).save_pretrained(tmp_path/'gen')
    with pytest.raises(ValueError, match='DebertaV2ForMaskedLM'): check_finetune_checkpoint(tmp_path/'gen')


@pytest.mark.parametrize('kind,want', [('missing', 'Cannot load the checkpoint'), ('empty', 'no config.json (found: nothing)'),
                                       ('no-weights', 'no weights (model.safetensors'), ('file', 'it is a file'),
                                       ('run-config', 'no model_type'), ('run-dir', 'pass --checkpoint')])
def test_no_model_refused(ckpt, tmp_path, kind, want):
    p = tmp_path/kind
    if kind == 'empty': p.mkdir()
    elif kind == 'no-weights': shutil.copytree(ckpt, p); (p/'model.safetensors').unlink()
    elif kind == 'file': p.write_text('x')
    elif kind == 'run-config': p.mkdir(); (p/'config.json').write_text(json.dumps({'steps': 10}))   # a pretraining run's config
    elif kind == 'run-dir': p = ckpt.parent
    with pytest.raises(FileNotFoundError, match='checkpoint') as e: check_finetune_checkpoint(p)
    assert want in str(e.value), str(e.value)


def test_sweep_refuses_a_generator_before_writing(ckpt, tmp_path, monkeypatch):
    gen = ckpt.parent/'generator2'
    ElectraForMaskedLM(ElectraForPreTraining.from_pretrained(ckpt).config).save_pretrained(gen)
    helpers.tiny_tokenizer(['the', 'a', 'good', 'bad']).save_pretrained(gen)
    monkeypatch.setattr(gf, 'finetune_run', lambda *a, **k: pytest.fail('trained'))
    cfg = FinetuneConfig(checkpoint=str(gen), glue_dir=str(FIX), tasks=('rte',), runs=1, output_dir=str(tmp_path/'out'))
    with pytest.raises(ValueError, match='is a generator'), contextlib.redirect_stdout(io.StringIO()): finetune_sweep(cfg)
    assert not (tmp_path/'out').exists()


def test_max_length_past_the_position_table_is_refused_before_writing(tmp_path, monkeypatch):
    short = helpers.tiny_electra_checkpoint(tmp_path/'short', helpers.tiny_tokenizer(['the', 'a', 'good', 'bad']), max_position_embeddings=64)
    monkeypatch.setattr(gf, 'finetune_run', lambda *a, **k: pytest.fail('trained'))
    cfg = FinetuneConfig(checkpoint=str(short), glue_dir=str(FIX), tasks=('rte',), runs=1, max_length=128, output_dir=str(tmp_path/'out'))
    with pytest.raises(ValueError, match=r'--max_length 128 is longer than the 64 positions.*Pass --max_length 64 or less'), \
         contextlib.redirect_stdout(io.StringIO()): finetune_sweep(cfg)
    assert not (tmp_path/'out').exists()
    # the installed script: a non-zero exit, the one-line reason, nothing written
    from cli_helpers import script
    r = script('electra-finetune', '--checkpoint', short, '--glue_dir', FIX, '--tasks', 'rte', '--runs', 1, '--max_length', 128,
               '--output_dir', tmp_path/'out2')
    assert r.returncode != 0 and 'Pass --max_length 64 or less' in r.stderr, r.stderr[-2000:]
    assert 'Traceback' not in r.stderr and not (tmp_path/'out2').exists()
