import subprocess, sys
from dataclasses import fields
from electra_gdes.config import PretrainConfig, FinetuneConfig

def _help(module):
    return subprocess.run([sys.executable, '-m', module, '--help'], capture_output=True, text=True, check=True).stdout

def test_pretrain_script_exposes_every_config_field():
    out = _help('electra_gdes.pretrain')
    missing = [f.name for f in fields(PretrainConfig) if f'--{f.name}' not in out]
    assert not missing, missing

def test_finetune_script_exposes_every_config_field():
    out = _help('electra_gdes.finetune')
    missing = [f.name for f in fields(FinetuneConfig) if f'--{f.name}' not in out]
    assert not missing, missing
