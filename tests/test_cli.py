"The installed console scripts: every config field is an option, exit status 0 on success and non-zero on failure."
import subprocess, sys
from dataclasses import fields
from electra_gdes.config import PretrainConfig, FinetuneConfig
from cli_helpers import script, tiny_pretrain_args

def test_pretrain_script_exposes_every_config_field():
    r = script('electra-pretrain', '--help')
    assert r.returncode == 0, r.stderr
    missing = [f.name for f in fields(PretrainConfig) if f'--{f.name}' not in r.stdout]
    assert not missing, missing

def test_finetune_script_exposes_every_config_field():
    r = script('electra-finetune', '--help')
    assert r.returncode == 0, r.stderr
    missing = [f.name for f in fields(FinetuneConfig) if f'--{f.name}' not in r.stdout]
    assert not missing, missing

def test_pretrain_exits_0_after_a_run_and_2_on_bad_input(tmp_path):
    ok = script('electra-pretrain', *tiny_pretrain_args(tmp_path), '--log', 'csv,tensorboard')
    assert ok.returncode == 0, ok.stderr[-3000:]
    run = tmp_path/'out'/'r'
    assert (run/'discriminator'/'config.json').is_file() and (run/'run_config.json').is_file()
    card = (run/'discriminator'/'README.md').read_text()   # the export's model card, from the run's config
    assert '# r: discriminator' in card and '| training | 4' in card
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from electra_gdes.logs import read_log
    acc = EventAccumulator(str(run/'tensorboard')); acc.Reload()   # --log tensorboard: event files in the run directory
    assert [(e.step, round(e.value, 4)) for e in acc.Scalars('train/loss')] == [(r['step'], round(r['loss'], 4)) for r in read_log(run/'log.csv')]
    bad = script('electra-pretrain', *tiny_pretrain_args(tmp_path, 'nocorpus'), '--corpus', tmp_path/'no_such_corpus')
    assert bad.returncode == 2 and 'Traceback' not in bad.stderr, bad.stderr[-2000:]   # a bad corpus is a bad option
    assert not (tmp_path/'out'/'nocorpus').exists()
    blocked = script('electra-pretrain', *tiny_pretrain_args(tmp_path, 'blocked'), '--output_dir', run/'log.csv')
    assert blocked.returncode == 1 and 'is a file, not a folder' in blocked.stderr and 'Traceback' not in blocked.stderr

def test_parsing_imports_no_torch():
    "--help must answer fast: the scripts import torch, transformers and fastai only after parsing."
    code = ("import sys\nfrom electra_gdes import pretrain, finetune\n"
            "for m in (pretrain, finetune):\n"
            "    try: m.main(['--help'])\n"
            "    except SystemExit: pass\n"
            "print(sorted(m for m in ('torch', 'transformers', 'fastai', 'datasets', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == '[]', out[-500:]
