"The trackers of --log, offline: what they log is read back from the files they leave in the run directory."
import dataclasses, glob, json, struct
from pathlib import Path

import pytest

from electra_gdes.config import FinetuneConfig, pretrain_config
from electra_gdes.train import fit_steps, pretrain_learner
from electra_gdes.logs import LOG_COLUMNS, read_log
from electra_gdes import trackers as T
from electra_gdes.trackers import check_log_requirements, close_trackers, make_trackers, parse_log_option

# tensorboard, wandb and neptune are pinned in requirements/cpu.lock: importing them here makes a missing one fail, never skip
import neptune, tensorboard, wandb   # noqa: F401
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2
from google.protobuf import json_format
from wandb.proto import wandb_internal_pb2
from helpers import word_level_data, tiny_pretrain_cfg

def read_tensorboard(log_dir) -> tuple:
    "`({tag: [(step, value)]}, {step: config text})` of the event files in `log_dir`."
    acc = EventAccumulator(str(log_dir), size_guidance={'scalars': 0, 'tensors': 0}); acc.Reload()
    scalars = {t: [(e.step, e.value) for e in acc.Scalars(t)] for t in acc.Tags()['scalars']}
    return scalars, {e.step: e.tensor_proto.string_val[0].decode() for e in acc.Tensors('config/text_summary')}

def read_hparams(log_dir) -> dict:
    "The hyper-parameters of the HParams plugin's session start in the event files of `log_dir`."
    acc = EventAccumulator(str(log_dir)); acc.Reload()
    for content in acc.PluginTagToContent('hparams').values():
        data = plugin_data_pb2.HParamsPluginData.FromString(content)
        if data.HasField('session_start_info'): return json_format.MessageToDict(data.session_start_info)['hparams']
    return {}

def wandb_records(path):
    "The protobuf records of a `.wandb` file (a LevelDB-format log of 32 KiB blocks after a 7-byte ':W&B' header)."
    b = Path(path).read_bytes()
    assert b[:4] == b':W&B'
    pos, buf, block = 7, b'', 32768
    while pos + 7 <= len(b):
        if block - pos % block < 7: pos += block - pos % block; continue
        _, n, kind = struct.unpack('<IHB', b[pos:pos + 7]); pos += 7
        if kind == 0 and n == 0: break
        buf += b[pos:pos + n]; pos += n
        if kind in (1, 4):   # FULL or LAST
            r = wandb_internal_pb2.Record(); r.ParseFromString(buf); buf = b''
            yield r

def read_wandb(run_dir) -> tuple:
    "`(config, history rows)` of the one offline wandb run under `run_dir/wandb`."
    (path,) = glob.glob(str(run_dir/'wandb'/'offline-run-*'/'run-*.wandb'))
    config, history = {}, []
    for r in wandb_records(path):
        kind = r.WhichOneof('record_type')
        if kind == 'run': config.update({i.key: json.loads(i.value_json) for i in r.run.config.update})
        elif kind == 'config': config.update({i.key: json.loads(i.value_json) for i in r.config.update})
        elif kind == 'history': history.append({i.key or '/'.join(i.nested_key): json.loads(i.value_json) for i in r.history.item})
    return config, history

def read_neptune(run_dir) -> tuple:
    "`(parameters, {series: [(step, value)]})` of the offline neptune run under `run_dir/.neptune`."
    (path,) = glob.glob(str(run_dir/'.neptune'/'offline'/'run__*'/'data-1.log'))
    params, series = {}, {}
    for line in Path(path).read_text().splitlines():
        op = json.loads(line)['obj']
        if op['path'][0] == 'parameters' and 'value' in op: params['/'.join(op['path'][1:])] = op['value']
        if op['type'] == 'LogFloats': series.setdefault('/'.join(op['path']), []).extend((v['step'], v['value']) for v in op['values'])
    return params, series

@pytest.fixture
def elsewhere(tmp_path, monkeypatch):
    "A working directory and a home of their own, to check that no tracker writes outside the run directory."
    for var in ('WANDB_MODE', 'WANDB_DIR', 'WANDB_CACHE_DIR', 'WANDB_CONFIG_DIR', 'WANDB_DATA_DIR', 'WANDB_ARTIFACT_DIR',
                'NEPTUNE_DATA_DIRECTORY', 'NEPTUNE_PROJECT', 'NEPTUNE_API_TOKEN', 'WANDB_API_KEY'):
        monkeypatch.delenv(var, raising=False)
    cwd, home = tmp_path/'cwd', tmp_path/'home'
    cwd.mkdir(); home.mkdir()
    monkeypatch.chdir(cwd); monkeypatch.setenv('HOME', str(home)); monkeypatch.setenv('XDG_CACHE_HOME', str(home/'.cache'))
    monkeypatch.setenv('XDG_CONFIG_HOME', str(home/'.config'))
    yield cwd, home
    assert list(cwd.iterdir()) == [] and list(home.iterdir()) == []


def test_parse_log_option():
    assert parse_log_option('csv') == ['csv']
    assert parse_log_option('csv, tensorboard,wandb,neptune-offline,tensorboard') == ['csv', 'tensorboard', 'wandb', 'neptune-offline']
    with pytest.raises(ValueError, match=r"unknown tracker 'mlflow'.*csv, tensorboard, wandb"): parse_log_option('csv,mlflow')
    with pytest.raises(ValueError, match='names no tracker'): parse_log_option('')
    with pytest.raises(ValueError, match=r'names neptune twice \(neptune-offline, neptune-async\)'): parse_log_option('neptune-offline,neptune-async')

def test_unusable_tracker_fails_before_anything_is_written(tmp_path, monkeypatch):
    cfg = tiny_pretrain_cfg(tmp_path, log='tensorboard,wandb')
    real = T.importlib.util.find_spec
    monkeypatch.setattr(T.importlib.util, 'find_spec', lambda name, *a: None if name == 'wandb' else real(name, *a))
    with pytest.raises(ImportError, match='--log wandb needs the wandb package.*pip install wandb'): make_trackers(cfg, cfg.run_dir)
    monkeypatch.undo()
    monkeypatch.delenv('NEPTUNE_API_TOKEN', raising=False); monkeypatch.delenv('WANDB_API_KEY', raising=False)
    monkeypatch.setenv('HOME', str(tmp_path))   # no ~/.netrc with a wandb login
    with pytest.raises(ValueError, match='neptune-async needs NEPTUNE_API_TOKEN'): make_trackers(dataclasses.replace(cfg, log='neptune-async'), cfg.run_dir)
    with pytest.raises(ValueError, match='wandb-online needs WANDB_API_KEY'): check_log_requirements(['csv', 'wandb-online'])
    assert not cfg.run_dir.exists()
    assert make_trackers(dataclasses.replace(cfg, log='tensorboard,neptune-offline'), cfg.run_dir, rank=1) == []
    assert not cfg.run_dir.exists()

def test_every_tracker_gets_the_rows_of_log_csv(tmp_path, elsewhere):
    "Pretraining with --log csv,tensorboard,wandb,neptune-offline: each tracker holds exactly log.csv's values at its steps."
    tok, ds = word_level_data()
    cfg = tiny_pretrain_cfg(tmp_path, log_every=4)   # 10 steps: rows at 4, 8 and 10
    trackers = make_trackers(dataclasses.replace(cfg, log='csv,tensorboard,wandb,neptune-offline'), cfg.run_dir)
    assert [type(t).__name__ for t in trackers] == ['TensorBoardTracker', 'WandbTracker', 'NeptuneTracker']
    fit_steps(pretrain_learner(cfg, ds, tok, trackers=trackers))   # RTDLogger closes them after the fit
    close_trackers(trackers)   # again, as a `finally` would: a no-op
    rows = read_log(cfg.run_dir/'log.csv')
    assert [r['step'] for r in rows] == [4, 8, 10]
    columns = [c for c in LOG_COLUMNS if c != 'step']

    scalars, configs = read_tensorboard(cfg.run_dir/'tensorboard')
    assert sorted(scalars) == sorted(f'train/{c}' for c in columns)
    for c in columns: assert scalars[f'train/{c}'] == [(r['step'], pytest.approx(r[c], rel=1e-6)) for r in rows]   # float32
    assert list(configs) == [0] and json.loads(configs[0].strip('`\n'))['lr'] == cfg.lr
    hparams = read_hparams(cfg.run_dir/'tensorboard')
    assert hparams['lr'] == cfg.lr and hparams['embedding_sharing'] == cfg.embedding_sharing and hparams['steps'] == cfg.steps

    config, history = read_wandb(cfg.run_dir)
    assert config['lr'] == cfg.lr and config['run_name'] == cfg.run_name and config['embedding_sharing'] == cfg.embedding_sharing
    assert [h['train/step'] for h in history] == [4, 8, 10]
    for h, r in zip(history, rows): assert {c: h[f'train/{c}'] for c in columns} == {c: r[c] for c in columns}

    params, series = read_neptune(cfg.run_dir)
    assert params['lr'] == cfg.lr and params['backbone'] == 'electra'
    for c in columns: assert series[f'train/{c}'] == [(r['step'], r[c]) for r in rows]

def test_eval_rows_get_their_own_step_axis(tmp_path, elsewhere):
    cfg = tiny_pretrain_cfg(tmp_path, log='wandb-offline,tensorboard')
    ts = make_trackers(cfg, cfg.run_dir)
    for t in ts:
        t.log({'step': 10, 'disc_loss': 0.5}, 10); t.log({'step': 20, 'disc_loss': 0.4}, 20)
        t.log({'step': 15, 'disc_auc': 0.61, 'disc_ap': 0.3, 'split': 'valid'}, 15, prefix='eval')   # an earlier step than the last row
        t.log({'step': 30, 'disc_loss': 0.3}, 30)
    close_trackers(ts)
    _, history = read_wandb(cfg.run_dir)
    assert [(h['train/step'], h['train/disc_loss']) for h in history if 'train/step' in h] == [(10, 0.5), (20, 0.4), (30, 0.3)]
    assert [(h['eval/step'], h['eval/disc_auc'], h['eval/disc_ap']) for h in history if 'eval/step' in h] == [(15, 0.61, 0.3)]
    scalars, _ = read_tensorboard(cfg.run_dir/'tensorboard')
    assert scalars['eval/disc_auc'] == [(15, pytest.approx(0.61))] and 'eval/split' not in scalars

def test_resumed_tensorboard_run_replaces_the_steps_after_the_checkpoint(tmp_path):
    cfg = tiny_pretrain_cfg(tmp_path, log='tensorboard')
    (first,) = make_trackers(cfg, cfg.run_dir)
    for s in (10, 20, 30): first.log({'mlm_loss': float(s)}, s)
    first.close()   # interrupted after step 30; its checkpoint was at step 20, the resumed run logs from 30 on
    (second,) = make_trackers(cfg, cfg.run_dir)
    for s in (30, 40): second.log({'mlm_loss': -float(s)}, s)
    second.close()
    scalars, configs = read_tensorboard(cfg.run_dir/'tensorboard')
    assert scalars['train/mlm_loss'] == [(10, 10.0), (20, 20.0), (30, -30.0), (40, -40.0)]
    assert list(configs) == [0, 30]   # the config again where the resumed run goes on

def test_finetuning_sweep_trackers(tmp_path, elsewhere):
    cfg = FinetuneConfig(size='tiny', practice=True, group='gdes', output_dir=str(tmp_path/'glue'), log='csv,neptune-offline,tensorboard')
    group = Path(cfg.output_dir)/cfg.group
    ts = make_trackers(cfg, group)
    for t in ts:
        for run, acc in enumerate((0.6, 0.7)): t.log({'accuracy': acc, 'f1': acc - 0.1}, run, prefix='glue/rte')
    close_trackers(ts)
    params, series = read_neptune(group)
    assert params['group'] == 'gdes' and params['tasks'] == str(cfg.tasks)
    assert series['glue/rte/accuracy'] == [(0, 0.6), (1, 0.7)]
    scalars, _ = read_tensorboard(group/'tensorboard')
    assert scalars['glue/rte/f1'] == [(0, pytest.approx(0.5)), (1, pytest.approx(0.6))]
