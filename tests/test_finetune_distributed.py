"""`electra-finetune` under `torchrun` (2 processes, gloo): one results line per run, one summary, one submission, and the
weights and dev metrics of a single-process sweep on the same global batch.

The tiny discriminator has no dropout (`--dropout 0` for the head, 0 in its config for the encoder): dropout masks are
drawn per process, so with dropout the two runs would differ by design. The equality is exact (up to the order of the
gradient all-reduce) for training sets with an even number of examples; with an odd number one rank repeats an example
each epoch (`DistributedSampler` padding, see `glue_train_dataloader`), as the practice QQP's 23 examples do."""
import json, os, subprocess, sys, time, warnings
from pathlib import Path

import pytest, torch
from safetensors.torch import load_file
from helpers import practice_suite_and_checkpoint

from electra_gdes.config import FinetuneConfig, GLUE_TASKS
from electra_gdes.glue_data import load_glue
from electra_gdes.glue_finetune import finetune_sweep, read_results, results_path, task_run_dir
from electra_gdes.glue_submission import SUBMISSION_FILES, validate_submission

BATCH = 8  # global: 4 per rank


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp('ddp_finetune')
    warnings.filterwarnings('ignore', message='.*SYNTHETIC.*')
    torch.manual_seed(0)  # the same tiny checkpoint every time
    practice, _ = practice_suite_and_checkpoint(d, n_train=24, n_dev=20, n_test=6,
                                                hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    cfg = FinetuneConfig(checkpoint=str(d/'disc'), glue_dir=str(practice), runs=1, epochs=2, batch_size=BATCH, lr=1e-3,
                         dropout=0.0, group='ddp', output_dir=str(d/'glue'), submission_dir=str(d/'test_outputs'))
    args = ['--checkpoint', cfg.checkpoint, '--glue_dir', cfg.glue_dir, '--runs', '1', '--epochs', '2', '--batch_size', str(BATCH),
            '--lr', '1e-3', '--dropout', '0', '--group', 'ddp', '--output_dir', cfg.output_dir, '--submission_dir', cfg.submission_dir]
    env = dict(os.environ, OMP_NUM_THREADS='1', MPLBACKEND='Agg', HF_HUB_OFFLINE='1', HF_DATASETS_OFFLINE='1')
    start = time.time()
    ddp = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2',
                          '-m', 'electra_gdes.finetune', *args], cwd=d, env=env, capture_output=True, text=True, timeout=300)
    print(f'torchrun sweep: {time.time() - start:.1f} s')
    assert ddp.returncode == 0, ddp.stdout[-3000:] + ddp.stderr[-5000:]
    return d, practice, cfg, ddp


@pytest.fixture(scope='module')
def single(setup):
    "The same sweep in this one process (one thread, as the workers)."
    d, _, cfg, _ = setup
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try: return finetune_sweep(FinetuneConfig(**{**cfg.__dict__, 'group': 'single'}))
    finally: torch.set_num_threads(threads)


def test_one_results_line_per_run_and_one_log(setup):
    d, _, cfg, ddp = setup
    lines = [json.loads(l) for l in results_path(cfg).read_text().splitlines()]
    assert sorted((r['task'], r['run']) for r in lines) == sorted((t, 0) for t in GLUE_TASKS)
    assert ddp.stdout.count('runs already finished') == 1 and ddp.stdout.count('dev scores x100') == 1
    assert not list((d/'glue'/'ddp').glob('*.tmp')) and not list((d/'glue'/'ddp').glob('.tmp-*'))


def test_one_validated_submission(setup):
    d, practice, cfg, _ = setup
    assert [p.name for p in (d/'test_outputs').iterdir()] == ['ddp']
    counts = validate_submission(d/'test_outputs'/'ddp', str(practice))
    assert set(counts) == set(SUBMISSION_FILES) and counts['AX'] == 6
    assert {'summary.csv', 'summary.md', 'summary.png', 'config.json'} <= {p.name for p in (d/'glue'/'ddp').iterdir()}


def test_two_processes_match_one_process_on_the_global_batch(setup, single):
    "Weights and dev metrics of every task equal those of the single-process sweep (gradient all-reduce: float tolerance)."
    _, practice, cfg, _ = setup
    even = [t for t in GLUE_TASKS if len(load_glue(t, str(practice)).train) % 2 == 0]
    assert set(GLUE_TASKS) - set(even) == {'qqp'}  # the practice QQP drops a row with an empty question: 23 examples
    ddp = {r['task']: r for r in read_results(results_path(cfg))}
    one = {r['task']: r for r in single}
    scfg = FinetuneConfig(**{**cfg.__dict__, 'group': 'single'})
    for task in even:
        assert ddp[task]['metrics'] == pytest.approx(one[task]['metrics'], abs=1e-4), task  # accuracies: multiples of 1/20
        for f, load in (('model.safetensors', load_file), ('head.pt', torch.load)):
            a, b = load(task_run_dir(cfg, task, 0)/f), load(task_run_dir(scfg, task, 0)/f)
            assert list(a) == list(b)
            for k in a: torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5, msg=lambda m: f'{task} {f} {k}: {m}')
    # and training moved the weights: the comparison is not between two copies of the checkpoint
    init = load_file(Path(cfg.checkpoint)/'model.safetensors')
    trained = load_file(task_run_dir(cfg, 'sst2', 0)/'model.safetensors')
    key = 'electra.encoder.layer.0.output.dense.weight'
    assert not torch.allclose(init[key], trained['encoder.layer.0.output.dense.weight'])


# ---- gradient accumulation under DDP ------------------------------------------------------------------------------

ACCUM_SCRIPT = '''
import json, os, sys, torch, torch.distributed as dist
from types import SimpleNamespace
from fastai.basics import Callback, set_seed
from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook
sys.path.insert(0, sys.argv[2])
from test_glue_finetune import accum_setup
from pathlib import Path
import electra_gdes.glue_finetune as gf
from electra_gdes.config import FinetuneConfig
torch.set_num_threads(1)
out, rank = Path(sys.argv[1]), int(os.environ['RANK'])
ckpt, ds = accum_setup(out/f'rank{rank}')   # before joining the group: transformers saves on rank 0 only once it is up
dist.init_process_group('gloo')
ws = dist.get_world_size()
reduced = []   # the micro-batch index of every gradient all-reduce (one per bucket)
class CountAllReduce(Callback):
    order = -4   # after DDPCallback wrapped the model
    def before_fit(self):
        self.learn.model.register_comm_hook(None, lambda state, bucket: reduced.append([self.learn.iter, self.learn.micro_start]) or allreduce_hook(None, bucket))
set_seed(0)
model, tok = gf.glue_classifier(ckpt, 2, dropout=0.0)
dl = gf.glue_train_dataloader(ds, tok, 32, 8, seed=0, rank=rank, world_size=ws, grad_accum=2)
learn = gf.finetune_learner(FinetuneConfig(lr=1e-3, epochs=1, batch_size=8, grad_accum=2, dropout=0.0),
                            SimpleNamespace(name='sst2', is_regression=False), model, dl, dl)
learn.add_cb(CountAllReduce())
with learn.no_bar(), learn.no_logging(): learn.fit(1)
if rank == 0:
    torch.save(model.state_dict(), out/'ddp.pt')
    (out/'reduced.json').write_text(json.dumps(dict(reduced=reduced, batches=len(dl))))
dist.destroy_process_group()
'''


def test_grad_accum_under_ddp_equals_one_process(tmp_path):
    """2 processes x grad_accum 2 (micro-batches of 2) on global batch 8 end at the weights of one process with grad_accum 1,
    and gradients are all-reduced only in the micro-batches that end an optimizer step."""
    import test_glue_finetune as tgf
    script = tmp_path/'accum.py'; script.write_text(ACCUM_SCRIPT)
    env = dict(os.environ, OMP_NUM_THREADS='1', HF_HUB_OFFLINE='1', HF_DATASETS_OFFLINE='1')
    p = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2', str(script),
                        str(tmp_path), str(Path(__file__).parent)], env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-5000:]
    info = json.loads((tmp_path/'reduced.json').read_text())
    assert info['batches'] == 3                                   # 10 examples per rank: batches of 4, 4, 2
    assert sorted(set(map(tuple, info['reduced']))) == [(0, 2), (1, 2), (2, 1)]   # only in the last micro-batch of each step
    ckpt, ds = tgf.accum_setup(tmp_path/'single')
    one, sched, _ = tgf.train_weights(ckpt, ds, 1)
    ddp = torch.load(tmp_path/'ddp.pt')
    assert list(ddp) == list(one)
    for k in one: torch.testing.assert_close(ddp[k], one[k], rtol=1e-5, atol=1e-6, msg=lambda m: f'{k}: {m}')
