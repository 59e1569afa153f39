"Long runs on the real pretraining Learner: SIGTERM mid-run then --resume (subprocesses), and non-finite steps."
import os, signal, subprocess, sys, textwrap, time
from pathlib import Path
import pytest, torch, datasets
from fastai.callback.core import Callback
from electra_gdes.config import pretrain_config
from electra_gdes.data import load_tokenizer
from electra_gdes.train import pretrain_learner, fit_steps
from electra_gdes.checkpoint import latest_checkpoint, read_checkpoint
from electra_gdes.long_runs import PreemptionCallback, NonFiniteCallback, NonFiniteTrainingError

STEPS = 16


def tiny_cfg(out, **kw):
    return pretrain_config('electra', 'tiny', output_dir=str(out), run_name='run', steps=STEPS, batch_size=4, max_length=32,
                           warmup_steps=4, checkpoint_fractions=(0.25, 1.0), log_every=4, **kw)


def tiny_dataset(tok, n=48, seed=0):
    "Random token ids framed as [CLS] ... [SEP]: enough to train through the whole pipeline in seconds."
    g = torch.Generator().manual_seed(seed)
    rows = [[tok.cls_token_id] + torch.randint(1000, 5000, (int(k),), generator=g).tolist() + [tok.sep_token_id]
            for k in torch.randint(8, 30, (n,), generator=g)]
    return datasets.Dataset.from_dict({'input_ids': rows, 'token_type_ids': [[0] * len(r) for r in rows]})


# The child process: a tiny pretraining run with the long-run callbacks. It writes the global step it has finished to
# `progress` after every batch, and waits a little per step when asked so the parent can signal it mid-run.
CHILD = textwrap.dedent('''
    import sys, time, torch
    from pathlib import Path
    from fastai.callback.core import Callback
    sys.path.insert(0, sys.argv[1])
    from test_long_runs import tiny_cfg, tiny_dataset
    from electra_gdes.data import load_tokenizer
    from electra_gdes.train import pretrain_learner, fit_steps
    from electra_gdes.checkpoint import resume_from_latest
    from electra_gdes.long_runs import PreemptionCallback, NonFiniteCallback
    out, mode = Path(sys.argv[2]), sys.argv[3]

    class Progress(Callback):
        order = 95  # after the checkpoint callback, before the preemption callback
        def after_batch(self):
            (out/'progress').write_text(str(self.learn.start_step + self.train_iter))
            if mode == 'slow': time.sleep(0.2)

    cfg = tiny_cfg(out)
    tok = load_tokenizer(cfg)
    torch.manual_seed(cfg.seed)  # the model's initial weights (a resumed run loads its own)
    learn = pretrain_learner(cfg, dataset=tiny_dataset(tok), tokenizer=tok,
                             cbs=[Progress(), PreemptionCallback(), NonFiniteCallback(cfg.max_nonfinite)])
    if mode == 'resume': resume_from_latest(learn)
    fit_steps(learn)
    print('finished at step', learn.start_step + learn.train_iter)
''')


def start_child(tmp_path, out, mode):
    script = tmp_path/'child.py'; script.write_text(CHILD)
    env = {**os.environ, 'HF_HUB_OFFLINE': '1', 'HF_DATASETS_OFFLINE': '1', 'OMP_NUM_THREADS': '1'}
    return subprocess.Popen([sys.executable, str(script), str(Path(__file__).parent), str(out), mode], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run_child(tmp_path, out, mode, sigterm_after=None, p=None):
    p = p or start_child(tmp_path, out, mode)
    if sigterm_after is not None:
        deadline = time.time() + 120
        while time.time() < deadline and p.poll() is None:
            prog = out/'progress'
            if prog.exists() and prog.read_text().strip() and int(prog.read_text()) >= sigterm_after: break
            time.sleep(0.05)
        p.send_signal(signal.SIGTERM)
    stdout, stderr = p.communicate(timeout=180)
    return p.returncode, stdout, stderr


def test_sigterm_writes_checkpoint_exits_cleanly_and_resume_finishes(tmp_path):
    out = tmp_path/'interrupted'
    straight = start_child(tmp_path, tmp_path/'straight', 'fast')  # an uninterrupted run, alongside, to compare with
    rc, stdout, stderr = run_child(tmp_path, out, 'slow', sigterm_after=8)
    assert rc == 128 + signal.SIGTERM, stderr[-3000:]
    assert 'Traceback' not in stderr and 'Stopped by SIGTERM after step' in stderr
    ckpt = latest_checkpoint(out/'run')
    stopped_at = read_checkpoint(ckpt)['step']
    assert 8 <= stopped_at < STEPS and ckpt.name == f'step-{stopped_at:08d}.pt'
    assert not list((out/'run'/'checkpoints').glob('.tmp-*'))  # written atomically
    rc, stdout, stderr = run_child(tmp_path, out, 'resume')
    assert rc == 0, stderr[-3000:]
    assert f'at step {stopped_at} of {STEPS}' in stdout and f'finished at step {STEPS}' in stdout
    # the resumed run ends where an uninterrupted one does: the preemption checkpoint holds the whole state
    rc, stdout, stderr = run_child(tmp_path, tmp_path/'straight', 'fast', p=straight)
    assert rc == 0, stderr[-3000:]
    resumed = read_checkpoint(latest_checkpoint(out/'run'))
    straight = read_checkpoint(latest_checkpoint(tmp_path/'straight'/'run'))
    assert resumed['step'] == straight['step'] == STEPS
    for k, v in straight['model'].items(): torch.testing.assert_close(resumed['model'][k], v, msg=lambda m: f'{k}: {m}')


class BadSteps(Callback):
    "Make the loss nan at steps `nan_loss`, a gradient inf at steps `inf_grad`; keep the weights before steps `keep`."
    order = 5  # after_loss/after_backward before NonFiniteCallback's before_step
    def __init__(self, nan_loss=(), inf_grad=(), keep=()):
        self.nan_loss, self.inf_grad, self.keep, self.weights = set(nan_loss), set(inf_grad), set(keep), {}
    def _step(self): return self.learn.start_step + self.train_iter
    def before_batch(self):
        if self.training and self._step() in self.keep:
            self.weights[self._step()] = [p.detach().clone() for p in self.learn.model.parameters()]
    def after_loss(self):
        if self.training and self._step() in self.nan_loss:
            self.learn.loss_grad = self.loss_grad * float('nan'); self.learn.loss = self.learn.loss_grad.clone()
    def after_backward(self):
        if self._step() in self.inf_grad: next(p for p in self.learn.model.parameters() if p.grad is not None).grad.view(-1)[0] = float('inf')


def _same(a, b): return all(torch.equal(x, y) for x, y in zip(a, b))


@pytest.fixture(scope='module')
def tok():
    return load_tokenizer(tiny_cfg('unused'))


def test_nonfinite_steps_are_skipped_counted_and_leave_weights(tmp_path, tok):
    cfg = tiny_cfg(tmp_path, max_nonfinite=3)
    bad = BadSteps(nan_loss={3, 10}, inf_grad={4, 11}, keep={2, 3, 4, 5, 6, 9, 10, 11, 12, 13})
    torch.manual_seed(0)
    learn = pretrain_learner(cfg, dataset=tiny_dataset(tok), tokenizer=tok, cbs=[bad, NonFiniteCallback(cfg.max_nonfinite)])
    fit_steps(learn)
    nf = learn.non_finite
    assert (nf.n_skipped, nf.in_a_row) == (4, 0)
    w = bad.weights
    for s in (3, 4, 10, 11): assert _same(w[s], w[s + 1]), f'step {s} changed the weights'
    for s in (2, 5, 9, 12): assert not _same(w[s], w[s + 1]), f'step {s} did not train'
    assert latest_checkpoint(cfg.run_dir).name == f'step-{STEPS:08d}.pt'


def test_nonfinite_in_a_row_stops_with_message_and_keeps_last_good_checkpoint(tmp_path, tok):
    cfg = tiny_cfg(tmp_path, max_nonfinite=3)  # checkpoints at steps 4 and 16
    bad = BadSteps(nan_loss={8, 10}, inf_grad={9}, keep={7, 8})
    torch.manual_seed(0)
    learn = pretrain_learner(cfg, dataset=tiny_dataset(tok), tokenizer=tok, cbs=[bad, NonFiniteCallback(cfg.max_nonfinite)])
    with pytest.raises(NonFiniteTrainingError, match=r'3 non-finite steps in a row \(the last at step 10: non-finite loss\)'):
        fit_steps(learn)
    assert learn.non_finite.n_skipped == 3
    now = [p.detach() for p in learn.model.parameters()]
    assert _same(bad.weights[8], now)  # steps 8, 9, 10 left the weights as step 7 made them
    ckpt = latest_checkpoint(cfg.run_dir)
    assert ckpt.name == 'step-00000004.pt' and all(torch.isfinite(v).all() for v in read_checkpoint(ckpt)['model'].values())
