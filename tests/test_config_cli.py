"The self-explaining command line of the installed scripts: help from the config's comments with the chosen preset's defaults, choices, --list_presets, --print_config, --config, dash spellings, parse-time range checks (exit 2, one line)."
import json, time
from cli_helpers import script

def _flat(s): return ' '.join(s.split())

def test_help_is_fast_and_shows_the_chosen_presets_defaults():
    t = time.perf_counter()
    tiny = script('electra-pretrain', '--help')
    seconds = time.perf_counter() - t
    assert tiny.returncode == 0 and seconds < 5, seconds   # under 1 s on an idle machine; 5 s of slack for a busy CI
    assert 'peak learning rate (default: 0.001)' in _flat(tiny.stdout) and 'optimizer steps (default: 1000)' in _flat(tiny.stdout)
    base = _flat(script('electra-pretrain', '--size', 'base', '--help').stdout)
    assert 'peak learning rate (default: 0.0002)' in base and 'optimizer steps (default: 766000)' in base
    assert 'discriminator width (default: 768)' in base
    assert '--embedding_sharing {gdes|es|nes}' in base

def test_unknown_choice_is_a_usage_error():
    r = script('electra-pretrain', '--size', 'huge')
    assert r.returncode == 2 and 'Traceback' not in r.stderr
    assert "invalid choice: 'huge'" in r.stderr.strip().splitlines()[-1]
    r = script('electra-pretrain', '--backbone', 'deberta', '--size', 'large', '--embedding_sharing', 'shared')
    assert r.returncode == 2 and "invalid choice: 'shared'" in r.stderr

def test_out_of_range_options_are_usage_errors():
    for args, msg in [(['--lr', '-1'], 'lr=-1.0 is out of range'), (['--steps', '0'], 'steps=0'), (['--batch_size', '0'], 'batch_size=0'),
                      (['--log_every', '0'], 'log_every=0'), (['--max_length', '600'], 'max_length=600'),
                      (['--batch_size', '16', '--grad_accum', '3'], 'not divisible by grad_accum=3'),
                      (['--allow_change', 'stepz'], "'stepz', which is not a setting"),
                      (['--log', 'csv,tensorbord'], "unknown tracker 'tensorbord'"),
                      (['--log', 'neptune-async'], '--log neptune-async needs NEPTUNE_API_TOKEN')]:
        r = script('electra-pretrain', *args)
        assert r.returncode == 2 and 'Traceback' not in r.stderr, (args, r.stderr[-500:])
        assert r.stderr.strip().splitlines()[-1].startswith('electra-pretrain: error: ') and msg in r.stderr, (args, r.stderr)
    for args, msg in [(['--epochs', '0'], 'epochs=0'), (['--runs', '0'], 'runs=0'), (['--size', 'huge'], "invalid choice: 'huge'"),
                      (['--grad_accum', '0'], 'grad_accum=0 is out of range'),
                      (['--batch_size', '32', '--grad_accum', '3'], 'batch_size=32 is not divisible by grad_accum=3'),
                      (['--log', 'csv,wandb,wandb-online'], 'names wandb twice')]:
        r = script('electra-finetune', '--size', 'small', *args)
        assert r.returncode == 2 and msg in r.stderr and 'Traceback' not in r.stderr, (args, r.stderr[-500:])

def test_list_presets():
    r = script('electra-pretrain', '--list_presets')
    assert r.returncode == 0
    table, note = r.stdout.strip().split('\n\n')
    rows = {tuple(l.split()[:2]): l.split() for l in table.splitlines()[1:]}
    assert len(rows) == 9 + 9   # ELECTRA 4, DeBERTa 5; BERT, RoBERTa and ModernBERT in ELECTRA's tiny, small and base
    assert rows['bert', 'small'][2:5] == rows['electra', 'small'][2:5] and rows['modernbert', 'base'][-1] == '50'
    assert 'under GDES (shown) and ES the generator is as wide as the discriminator' in note
    # ELECTRA-small: 256 wide, 12 layers, 4 heads, 13.5M discriminator parameters, lr 5e-4, batch 128, 1M steps, 15%, lambda 50
    assert rows['electra', 'small'] == ['electra', 'small', '256', '12', '4', '13.5M', '4.6M', '0.0005', '128', '1M', '0.15', '50']
    assert rows['deberta', 'base'][2:5] == ['768', '12', '12'] and rows['deberta', 'base'][-1] == '10'

def test_print_config_and_config_file(tmp_path):
    (tmp_path/'c.json').write_text(json.dumps({'size': 'small', 'steps': 5000, 'lr': 3e-4}))
    r = script('electra-pretrain', '--config', tmp_path/'c.json', '--batch-size', '64', '--print_config', cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    lines = dict(l.split(None, 1) for l in r.stdout.splitlines() if l.startswith('  '))
    assert (lines['steps'], lines['lr'], lines['batch_size'], lines['hidden_size']) == ('5000', '0.0003', '64', '256')
    assert 'optimisation:' in r.stdout and not (tmp_path/'checkpoints').exists()   # printed, nothing done
    (tmp_path/'bad.json').write_text(json.dumps({'stepz': 1}))
    bad = script('electra-pretrain', '--config', tmp_path/'bad.json')
    assert bad.returncode == 2 and 'unknown field(s) stepz' in bad.stderr

def test_continued_pretraining_defaults():
    r = script('electra-pretrain', '--backbone', 'deberta', '--size', 'base', '--init_generator', 'g', '--init_discriminator', 'd',
               '--print_config')
    assert r.returncode == 0 and 'Continued pretraining: lr 5e-05, steps 100000' in r.stdout
    lines = dict(l.split(None, 1) for l in r.stdout.splitlines() if l.startswith('  '))
    assert (lines['lr'], lines['steps']) == ('5e-05', '100000')
    own = script('electra-pretrain', '--init_generator', 'g', '--init_discriminator', 'd', '--lr', '1e-5', '--print_config')
    lines = dict(l.split(None, 1) for l in own.stdout.splitlines() if l.startswith('  '))
    assert (lines['lr'], lines['steps']) == ('1e-05', '100000')

def test_finetune_size_is_inferred_from_the_checkpoint(tmp_path):
    for name, (h, n) in {'big': (1024, 24), 'mid': (768, 12)}.items():
        (tmp_path/name).mkdir(); (tmp_path/name/'config.json').write_text(json.dumps({'hidden_size': h, 'num_hidden_layers': n}))
    r = script('electra-finetune', '--checkpoint', tmp_path/'big', '--print_config')
    assert r.returncode == 0 and 'Fine-tuning size: large (lr 5e-05, layer decay 0.9), inferred from hidden_size 1024' in r.stdout
    r = script('electra-finetune', '--checkpoint', tmp_path/'mid', '--size', 'small', '--print_config')
    assert r.returncode == 0 and 'Fine-tuning size' not in r.stdout
    lines = dict(l.split(None, 1) for l in r.stdout.splitlines() if l.startswith('  '))
    assert (lines['size'], lines['lr']) == ('small', '0.0003')
    r = script('electra-finetune', '--checkpoint', 'someone/my-model', '--print_config')
    assert r.returncode == 2 and 'pass --size small, base or large' in r.stderr

def test_config_file_fields_are_type_checked(tmp_path):
    "A --config field of the wrong type is refused at parse time naming the field and the file (exit 2, one line), nothing written."
    for field, value, msg in [('steps', 10.7, 'steps=10.7 is not a whole number'), ('steps', 'ten', "steps='ten' is not a whole number"),
                              ('lr', '1e-3', "lr='1e-3' is not a number"), ('compile', 'yes', "compile='yes' is not true or false"),
                              ('checkpoint_fractions', 'half', "checkpoint_fractions='half' is not a list of numbers")]:
        (tmp_path/'c.json').write_text(json.dumps({field: value}))
        for extra in (['--print_config'], ['--output_dir', tmp_path/'out']):
            r = script('electra-pretrain', '--config', tmp_path/'c.json', *extra, cwd=tmp_path)
            line = r.stderr.strip().splitlines()[-1]
            assert r.returncode == 2 and 'Traceback' not in r.stderr, (field, r.stderr[-1000:])
            assert line.startswith('electra-pretrain: error: ' + msg) and f"--config {tmp_path/'c.json'}" in line, line
            assert f'--{field}' in line and not (tmp_path/'out').exists() and not (tmp_path/'checkpoints').exists()
    (tmp_path/'c.json').write_text(json.dumps({'steps': 1e3}))   # a whole number written as a float is that number
    r = script('electra-pretrain', '--config', tmp_path/'c.json', '--print_config')
    assert r.returncode == 0 and dict(l.split(None, 1) for l in r.stdout.splitlines() if l.startswith('  '))['steps'] == '1000'
    (tmp_path/'f.json').write_text(json.dumps({'runs': 2.5, 'size': 'small'}))
    r = script('electra-finetune', '--config', tmp_path/'f.json', '--print_config')
    assert r.returncode == 2 and 'runs=2.5 is not a whole number' in r.stderr and 'Traceback' not in r.stderr

def test_precision_defaults(tmp_path):
    pre = script('electra-pretrain', '--print_config')
    assert dict(l.split(None, 1) for l in pre.stdout.splitlines() if l.startswith('  '))['precision'] == 'auto'
    assert '--precision {auto|fp32|bf16|fp16}' in _flat(script('electra-pretrain', '--help').stdout)
    ft = script('electra-finetune', '--size', 'small', '--print_config')
    assert dict(l.split(None, 1) for l in ft.stdout.splitlines() if l.startswith('  '))['precision'] == 'fp32'
    assert script('electra-finetune', '--size', 'small', '--precision', 'auto').returncode == 2

def test_tracker_credentials_and_server_are_checked_before_the_run_folder(tmp_path):
    "An invalid neptune token, or a streaming tracker whose server cannot be reached: exit 2 before anything is written."
    import os
    from cli_helpers import BIN, ENV
    import subprocess
    def run(env, log):
        return subprocess.run([str(BIN/'electra-pretrain'), '--log', log, '--output_dir', tmp_path/'out', '--cache_dir', tmp_path/'cache'],
                              env={**ENV, 'HTTPS_PROXY': '', 'https_proxy': '', **env}, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    bad = run({'NEPTUNE_API_TOKEN': 'not-a-token'}, 'neptune-async')
    assert bad.returncode == 2 and 'NEPTUNE_API_TOKEN is not a neptune API token' in bad.stderr.strip().splitlines()[-1]
    import base64
    unreachable = base64.b64encode(json.dumps({'api_address': 'http://127.0.0.1:9', 'api_key': 'x'}).encode()).decode()
    r = run({'NEPTUNE_API_TOKEN': unreachable}, 'neptune-async')   # nothing listens on the discard port
    assert r.returncode == 2 and 'cannot reach the neptune server http://127.0.0.1:9' in r.stderr, r.stderr[-1000:]
    w = run({'WANDB_API_KEY': 'x' * 40, 'WANDB_BASE_URL': 'http://127.0.0.1:9'}, 'wandb-online')
    assert w.returncode == 2 and 'cannot reach the wandb server http://127.0.0.1:9' in w.stderr, w.stderr[-1000:]
    assert 'Traceback' not in bad.stderr + r.stderr + w.stderr
    assert not (tmp_path/'out').exists() and not (tmp_path/'cache').exists()
