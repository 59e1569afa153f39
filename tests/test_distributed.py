"""Two processes (torchrun, gloo) against one: the same weights, the same examples, one log, resume with another world size.

Randomness is made identical between the runs (see nbs/07_distributed.ipynb): equal-length examples, masks seeded per
example, greedy generator sampling (temperature near 0) and no dropout."""
import json, os, shutil, signal, subprocess, sys, textwrap
from pathlib import Path
import pytest, torch, datasets
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader
from fastai.callback.core import Callback
from fastai.data.core import DataLoaders
from fastai.learner import Learner
from fastai.losses import MSELossFlat
from electra_gdes.config import pretrain_config
from electra_gdes.data import load_tokenizer
from electra_gdes.rtd import mask_tokens
from electra_gdes.distributed import DDPCallback, shard_loader
from electra_gdes.long_runs import NonFiniteCallback, PreemptionCallback
from electra_gdes.train import RTDCallback, pretrain_learner, fit_steps
from electra_gdes.logs import read_log
from electra_gdes.checkpoint import latest_checkpoint, read_checkpoint, resume_from_latest

STEPS, BATCH, LENGTH = 6, 8, 24


def tiny_cfg(out, **kw):
    return pretrain_config('electra', 'tiny', output_dir=str(out), run_name='run', steps=STEPS, batch_size=BATCH,
                           max_length=LENGTH, warmup_steps=2, checkpoint_fractions=(0.5, 1.0), log_every=1,
                           temperature=1e-6, **kw)


def equal_length_dataset(tok, n=40, seed=0):
    "Examples of one length: each rank's mean loss over its half is then half of the global mean's sum."
    g = torch.Generator().manual_seed(seed)
    body = torch.randint(1000, 5000, (n, LENGTH - 2), generator=g).tolist()
    rows = [[tok.cls_token_id] + b + [tok.sep_token_id] for b in body]
    return datasets.Dataset.from_dict({'input_ids': rows, 'token_type_ids': [[0] * LENGTH for _ in rows]})


class PerExampleMasks(RTDCallback):
    "RTDCallback, but each example is masked with a generator seeded by its own tokens: the same on any rank."
    def before_batch(self):
        input_ids, attention_mask, token_type_ids = (*self.learn.xb, *self.learn.yb)
        masked = [mask_tokens(r[None], m[None], self.special_ids, self.mask_token_id, self.vocab_size, self.cfg.mask_prob,
                              self.cfg.mask_style, generator=torch.Generator().manual_seed(int(r.sum()) * 1009 + int(r[1])))
                  for r, m in zip(input_ids, attention_mask)]
        masked_ids, is_masked = torch.cat([m for m, _ in masked]), torch.cat([i for _, i in masked])
        self.learn.xb = (masked_ids, attention_mask, token_type_ids, is_masked)
        self.learn.yb = (input_ids, is_masked, attention_mask)


class Batches(Callback):
    "Record the examples (first real token of each) of every training batch."
    def before_fit(self): self.seen = []
    def before_batch(self):
        if self.training: self.seen.append(self.learn.yb[0][:, 1].tolist())


def deterministic_learner(cfg, tok, cbs=(), learner=pretrain_learner, **kw):
    torch.manual_seed(cfg.seed)
    learn = learner(cfg, dataset=equal_length_dataset(tok), tokenizer=tok, cbs=list(cbs), **kw)
    for m in learn.model.modules():
        if isinstance(m, nn.Dropout): m.p = 0.
    rtd = next(cb for cb in learn.cbs if type(cb) is RTDCallback)
    learn.remove_cb(rtd)
    learn.add_cb(PerExampleMasks(cfg, rtd.special_ids, rtd.mask_token_id, rtd.vocab_size, rtd.rank))
    return learn


class Inputs(Callback):
    "Record the first feature of every training input (it identifies the example)."
    def before_fit(self): self.seen = []
    def before_batch(self):
        if self.training: self.seen.append(self.learn.xb[0][:, 0].tolist())


def finetune_learner(batch_size, cbs=(), one_process=False):
    "A fine-tuning-like Learner: a plain shuffled DataLoader, as GLUE fine-tuning has; sharded by `DDPCallback(shard_train=True)`."
    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 4, generator=g); y = x @ torch.randn(4, 2, generator=g)
    ds = list(zip(x, y))
    train = DataLoader(ds, batch_size=batch_size, shuffle=True)
    if one_process: train = shard_loader(train, 0, 1, seed=3)  # the same shuffle as the ranks', not split
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    return Learner(DataLoaders(train, DataLoader(ds[:8], batch_size=8)), model, loss_func=MSELossFlat(), lr=1e-2,
                   cbs=[DDPCallback(shard_train=True, seed=3), *cbs])


class RankOneFaults(Callback):
    "On rank 1 only: an inf gradient at batch 1 (after DDP's all-reduce), a SIGTERM during batch 3."
    order = 5
    def after_backward(self):
        if dist.get_rank() == 1 and self.train_iter == 1: next(self.learn.model.parameters()).grad.view(-1)[0] = float('inf')
    def after_loss(self):
        if dist.get_rank() == 1 and self.training and self.train_iter == 3: self.learn.preemption.on_signal(signal.SIGTERM)


class RecordingCheckpoint(Callback):
    def before_fit(self): self.saved = []
    def save(self, learn): self.saved.append(learn.train_iter)


def long_run_faults():
    "Train with the long-run callbacks under DDP; what each rank saw."
    ckpt = RecordingCheckpoint()
    learn = finetune_learner(4, [RankOneFaults(), NonFiniteCallback(3), PreemptionCallback(exit_code=None), ckpt])
    learn.fit(2)
    return dict(skipped=learn.non_finite.n_skipped, stopped_at=learn.train_iter, saved=ckpt.saved, preempted=learn.preempted,
                weights=[p.double().sum().item() for p in learn.model.parameters()])


# Run by torchrun in each of 2 processes: rank 0 builds the Arrow cache of a small corpus first, then both train.
WORKER = textwrap.dedent('''
    import json, sys, torch
    import torch.distributed as dist
    from pathlib import Path
    sys.path.insert(0, sys.argv[1])
    from test_distributed import tiny_cfg, deterministic_learner, Batches
    from electra_gdes.data import load_tokenizer, build_pretrain_dataset
    from electra_gdes.distributed import init_distributed, rank0_first, distributed_pretrain_learner, cleanup_distributed
    from electra_gdes.train import fit_steps
    out = Path(sys.argv[2])
    env = init_distributed()
    cfg = tiny_cfg(out, corpus=str(out/'corpus.txt'), cache_dir=str(out/'cache'), num_proc=1)
    tok = load_tokenizer(cfg)
    cache = out/'cache'/'pretrain'
    def build():
        found = cache.exists() and any(cache.iterdir())
        return found, len(build_pretrain_dataset(cfg, tok))
    found, n = rank0_first(build)
    batches = Batches()
    learn = deterministic_learner(cfg, tok, [batches], learner=distributed_pretrain_learner)
    fit_steps(learn)
    report = dict(rank=env.rank, world_size=env.world_size, cache_found=found, n_examples=n, batches=batches.seen,
                  model_after_fit=type(learn.model).__name__)
    # fine-tuning mechanics: a plain shuffled loader split over the ranks, 2 epochs
    from test_distributed import finetune_learner, Inputs
    inputs = Inputs()
    ft = finetune_learner(4, [inputs])
    ft.fit(2)
    report['finetune_inputs'] = inputs.seen
    # long-run callbacks under DDP: an inf gradient and a SIGTERM that only rank 1 sees
    from test_distributed import long_run_faults
    report['long_runs'] = long_run_faults()
    reports = [None] * env.world_size
    dist.all_gather_object(reports, report)
    if env.rank == 0:
        torch.save(learn.model.state_dict(), out/'ddp_final.pt')
        torch.save(ft.model.state_dict(), out/'finetune_final.pt')
        (out/'reports.json').write_text(json.dumps(reports))
    cleanup_distributed()
''')


@pytest.fixture(scope='module')
def ddp_run(tmp_path_factory):
    out = tmp_path_factory.mktemp('ddp')
    (out/'corpus.txt').write_text('\n\n'.join(f'Document {i}. ' + ' '.join(f'The nation met on day {j} of year {i}.'
                                                                           for j in range(12)) for i in range(6)))
    (out/'worker.py').write_text(WORKER)
    env = {**os.environ, 'HF_HUB_OFFLINE': '1', 'HF_DATASETS_OFFLINE': '1', 'OMP_NUM_THREADS': '1'}
    p = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2',
                        str(out/'worker.py'), str(Path(__file__).parent), str(out)],
                       env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-5000:]
    return out


@pytest.fixture(scope='module')
def tok():
    return load_tokenizer(tiny_cfg('unused'))


@pytest.fixture(scope='module')
def single_run(tmp_path_factory, tok):
    out = tmp_path_factory.mktemp('single')
    batches, threads = Batches(), torch.get_num_threads()
    torch.set_num_threads(1)  # as the torchrun workers (a module fixture runs outside the per-test one_thread)
    try: fit_steps(learn := deterministic_learner(tiny_cfg(out), tok, [batches]))
    finally: torch.set_num_threads(threads)
    return learn, batches.seen


def test_rank0_builds_the_data_and_the_others_load_it(ddp_run):
    r0, r1 = json.loads((ddp_run/'reports.json').read_text())
    assert (r0['rank'], r1['rank'], r0['world_size']) == (0, 1, 2)
    assert (r0['cache_found'], r1['cache_found']) == (False, True)  # rank 1 found rank 0's Arrow cache
    assert r0['n_examples'] == r1['n_examples'] > 0
    assert len(list((ddp_run/'cache'/'pretrain').iterdir())) == 1
    assert r0['model_after_fit'] == r1['model_after_fit'] == 'RTDModel'  # unwrapped after the fit


def test_each_rank_sees_its_own_half_of_the_global_batch(ddp_run, single_run):
    r0, r1 = json.loads((ddp_run/'reports.json').read_text())
    _, single = single_run
    assert len(r0['batches']) == len(single) == STEPS
    for b0, b1, b in zip(r0['batches'], r1['batches'], single):
        assert len(b0) == len(b1) == BATCH // 2 and b0 + b1 == b


def test_two_processes_end_with_the_weights_of_one_process_on_the_doubled_batch(ddp_run, single_run):
    learn, _ = single_run
    ddp = torch.load(ddp_run/'ddp_final.pt')
    single = learn.model.state_dict()
    assert list(ddp) == list(single)  # no 'module.' prefix
    for k, v in single.items(): torch.testing.assert_close(ddp[k], v, rtol=1e-4, atol=1e-5, msg=lambda m: f'{k}: {m}')


def test_only_rank0_writes_the_log(ddp_run):
    assert [r['step'] for r in read_log(ddp_run/'run'/'log.csv')] == list(range(1, STEPS + 1))


def test_resume_with_another_world_size(ddp_run, single_run, tok, tmp_path):
    "The checkpoint two processes wrote at step 3 resumes in one process to the same end."
    run_dir = tmp_path/'run'/'checkpoints'; run_dir.mkdir(parents=True)
    for f in (ddp_run/'run'/'checkpoints').glob('step-00000003.pt*'): shutil.copy(f, run_dir/f.name)
    learn = deterministic_learner(tiny_cfg(tmp_path), tok)
    assert resume_from_latest(learn) == 3
    fit_steps(learn)
    single, _ = single_run
    for k, v in single.model.state_dict().items():
        torch.testing.assert_close(learn.model.state_dict()[k], v, rtol=1e-4, atol=1e-5, msg=lambda m: f'{k}: {m}')


def test_finetuning_shards_a_shuffled_loader_and_matches_one_process(ddp_run):
    r0, r1 = json.loads((ddp_run/'reports.json').read_text())
    inputs = Inputs()
    single = finetune_learner(8, [inputs], one_process=True)
    single.fit(2)
    assert len(r0['finetune_inputs']) == len(inputs.seen) == 2 * 4  # 2 epochs of 32 examples, global batch 8
    for b0, b1, b in zip(r0['finetune_inputs'], r1['finetune_inputs'], inputs.seen):
        assert not set(b0) & set(b1) and sorted(b0 + b1) == sorted(b)  # disjoint halves of the same global batch
    assert r0['finetune_inputs'][:4] != r0['finetune_inputs'][4:]  # a new shuffle in the second epoch
    ddp = torch.load(ddp_run/'finetune_final.pt')
    for k, v in single.model.state_dict().items(): torch.testing.assert_close(ddp[k], v, msg=lambda m: f'{k}: {m}')


def test_ranks_agree_to_skip_a_step_and_to_stop_on_a_signal_only_one_saw(ddp_run):
    "Without agreement rank 0 would step where rank 1 skips (the weights would part) and train on after rank 1 stopped."
    r0, r1 = (r['long_runs'] for r in json.loads((ddp_run/'reports.json').read_text()))
    assert r0['skipped'] == r1['skipped'] == 1
    assert r0['stopped_at'] == r1['stopped_at'] == 4 and r0['saved'] == r1['saved'] == [4]
    assert r0['preempted'] and r1['preempted']
    assert r0['weights'] == r1['weights']
