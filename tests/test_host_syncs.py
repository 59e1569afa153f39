"""Issue 21 item 2 and 3, counted on the CPU: a training step that does not log reads no device value (no
`aten::_local_scalar_dense`, the op behind `.item()` / `bool(t)`, no `nonzero` or `masked_select` from boolean
indexing), and runs the same number of aten ops at batch 8 as at batch 32 (no work per row from Python)."""
import collections, torch, pytest
from fastai.callback.core import Callback
from torch.utils._python_dispatch import TorchDispatchMode
from electra_gdes.train import pretrain_learner, fit_steps
from helpers import word_level_data, tiny_pretrain_cfg

SYNC_OPS = ('_local_scalar_dense', 'nonzero', 'masked_select', 'item')

class CountOps(TorchDispatchMode):
    def __init__(self): super().__init__(); self.names = collections.Counter()
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names[func.__name__.split('.')[0]] += 1
        return func(*args, **(kwargs or {}))

class StepWindow(Callback):
    "Count the aten ops of training step `at` from its first callback to its last (the data loading between steps excluded)."
    order = -100
    def __init__(self, at): self.at, self.counts = at, None
    def before_batch(self):
        if self.training and self.train_iter == self.at: self.mode = CountOps(); self.mode.__enter__()

class StepWindowEnd(Callback):
    order = 1000
    def __init__(self, window): self.window = window
    def after_batch(self):
        w = self.window
        if self.training and hasattr(w, 'mode') and self.train_iter == w.at + 1:   # train_iter has moved on by now
            w.mode.__exit__(None, None, None); w.counts = w.mode.names; del w.mode

def deberta_cfg(tmp_path, **kw):
    "The tiny DeBERTa preset shrunk: the Enhanced Mask Decoder in its 2-layer generator, decoupled training (issue 18)."
    from electra_gdes.config import pretrain_config
    return pretrain_config('deberta', 'tiny', **{**dict(hidden_size=32, num_heads=2, intermediate_size=64, embedding_size=32,
                           num_layers=4, max_position_embeddings=64, max_length=32, position_buckets=16, steps=10,
                           warmup_steps=2, batch_size=8, checkpoint_fractions=(), output_dir=str(tmp_path)), **kw})

def step_ops(tmp_path, batch_size, make_cfg=tiny_pretrain_cfg, **kw):
    tok, ds = word_level_data()
    window = StepWindow(5)
    cfg = make_cfg(tmp_path/f'b{batch_size}', steps=8, batch_size=batch_size, log_every=100, **kw)
    fit_steps(pretrain_learner(cfg, ds, tok, cbs=[window, StepWindowEnd(window)], device=torch.device('cpu')))
    return window.counts

@pytest.mark.parametrize('precision,sampling', [('fp32', 'gumbel'), ('bf16', 'gumbel'), ('fp32', 'multinomial')])
def test_a_step_that_does_not_log_never_syncs_and_its_ops_do_not_grow_with_the_batch(tmp_path, precision, sampling):
    small, large = (step_ops(tmp_path, b, precision=precision, sampling=sampling) for b in (8, 32))
    for counts in (small, large):
        assert not any(counts[op] for op in SYNC_OPS), {op: counts[op] for op in SYNC_OPS if counts[op]}
        assert sum(counts.values()) > 200                      # the window did see a whole step
    assert sum(small.values()) == sum(large.values()), (sum(small.values()), sum(large.values()))

def test_with_grad_accum_each_micro_batch_is_the_same_work(tmp_path):
    one, two = (step_ops(tmp_path/f'a{n}', 16, grad_accum=n) for n in (1, 2))
    assert not any(two[op] for op in SYNC_OPS)
    assert sum(two.values()) < 2.2 * sum(one.values())         # two micro-batches: about twice one step's model work

@pytest.mark.parametrize('grad_accum', [1, 2])
def test_a_decoupled_deberta_step_with_emd_never_syncs_and_its_ops_do_not_grow_with_the_batch(tmp_path, grad_accum):
    "Decoupled training (two optimizer steps in one batch) and the Enhanced Mask Decoder keep the rules above."
    small, large = (step_ops(tmp_path/f'a{grad_accum}', b, make_cfg=deberta_cfg, grad_accum=grad_accum) for b in (8, 32))
    for counts in (small, large):
        assert not any(counts[op] for op in SYNC_OPS), {op: counts[op] for op in SYNC_OPS if counts[op]}
        assert counts['_fused_adamw_'] == 4   # two optimizer steps, each over its model's decayed and not-decayed group
    assert sum(small.values()) == sum(large.values()), (sum(small.values()), sum(large.values()))
