"""Gradient accumulation: N micro-batches give the step of the whole global batch (same masks, same samples, the loss
normalised by the global counts), on one process and on two (torchrun, gloo); one gradient all-reduce per step."""
import json, os, subprocess, sys, textwrap
from pathlib import Path
import pytest, torch
from torch import nn
from electra_gdes.config import pretrain_config
from electra_gdes.train import pretrain_learner, fit_steps
from electra_gdes.logs import read_log
from electra_gdes.rtd import SAMPLER_FUNCS

STEPS = 3

def word_data(n=64, seed=0):
    "A 32-word WordLevel tokenizer and `n` examples of 6 to 22 tokens (micro-batches are padded to different lengths)."
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast
    import datasets
    vocab = {t: i for i, t in enumerate(['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'] + [f'w{i}' for i in range(27)])}
    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(WordLevel(vocab, unk_token='[UNK]')), pad_token='[PAD]',
                                  unk_token='[UNK]', cls_token='[CLS]', sep_token='[SEP]', mask_token='[MASK]')
    g = torch.Generator().manual_seed(seed)
    rows = []
    for s in range(n):
        length = int(torch.randint(4, 21, (1,), generator=g))
        rows.append({'input_ids': [2] + torch.randint(1, 32, (length,), generator=g).clamp_min(5).tolist() + [3],
                     'token_type_ids': [0] * (length + 2)})
    return tok, datasets.Dataset.from_list(rows)

def cfg_for(out, run_name, grad_accum, **kw):
    return pretrain_config('electra', 'tiny', **{**dict(hidden_size=32, num_heads=2, intermediate_size=64, embedding_size=32,
                           num_layers=1, max_length=24, max_position_embeddings=24, steps=STEPS, warmup_steps=1, batch_size=32,
                           grad_accum=grad_accum, log_every=1, checkpoint_fractions=(), output_dir=str(out), run_name=run_name,
                           lr=2e-3), **kw})

def no_dropout(learn):
    for m in learn.model.modules():
        if isinstance(m, nn.Dropout): m.p = 0.
    return learn

def weights(learn): return {k: v.detach().clone() for k, v in learn.model.state_dict().items()}

def assert_same_run(a_dir, b_dir, wa, wb):
    la, lb = read_log(Path(a_dir)/'log.csv'), read_log(Path(b_dir)/'log.csv')
    assert [r['step'] for r in la] == [r['step'] for r in lb] == list(range(1, STEPS + 1))
    for k in ('loss', 'mlm_loss', 'disc_loss', 'gen_acc', 'disc_acc', 'replaced_f1', 'lr'):
        assert [r[k] for r in la] == pytest.approx([r[k] for r in lb], rel=1e-4, abs=1e-6), k
    assert wa.keys() == wb.keys()
    for k in wa: torch.testing.assert_close(wa[k], wb[k], rtol=1e-4, atol=1e-5, msg=k)

@pytest.mark.parametrize('sampling', ['gumbel', 'multinomial'])
def test_four_micro_batches_of_8_equal_one_step_of_32(tmp_path, sampling):
    "Each sampler of `cfg.sampling` (ELECTRA's Gumbel-max, DeBERTaV3's multinomial) draws the same samples however the batch is split."
    tok, ds = word_data()
    runs = {}
    for accum in (1, 4):
        learn = no_dropout(pretrain_learner(cfg_for(tmp_path, f'accum{accum}', accum, sampling=sampling), ds, tok, device=torch.device('cpu')))
        assert learn.model.sample is SAMPLER_FUNCS[sampling]
        fit_steps(learn)
        runs[accum] = weights(learn)
    assert_same_run(tmp_path/'accum1', tmp_path/'accum4', runs[1], runs[4])
    # and the runs did train (the comparison is not of two untouched models)
    init = weights(pretrain_learner(cfg_for(tmp_path, 'init', 1, sampling=sampling), ds, tok, device=torch.device('cpu')))
    assert any(not torch.allclose(init[k], runs[4][k]) for k in init)

def test_the_loss_is_normalised_by_the_global_counts_not_by_n(tmp_path):
    "Dividing each micro-batch's mean by N (fastai's GradientAccumulation) would differ here: the micro-batches differ in length."
    tok, ds = word_data()
    learn = no_dropout(pretrain_learner(cfg_for(tmp_path, 'one', 1), ds, tok, device=torch.device('cpu')))
    fit_steps(learn)
    from electra_gdes.rtd import RTDLoss
    l4 = no_dropout(pretrain_learner(cfg_for(tmp_path, 'naive', 4), ds, tok, device=torch.device('cpu')))
    class OwnMean(RTDLoss):   # each micro-batch's own mean, divided by N: what the global counts replace
        def __call__(self, out, *yb, counts=None):
            loss = super().__call__(out, *yb) / 4
            self.mlm_loss, self.disc_loss = self.mlm_loss / 4, self.disc_loss / 4
            return loss
    l4.loss_func = OwnMean(l4.cfg.disc_weight)
    fit_steps(l4)
    w1, w4 = weights(learn), weights(l4)
    assert max((w1[k] - w4[k]).abs().max().item() for k in w1) > 1e-4

WORKER = textwrap.dedent('''
    import json, sys, torch
    sys.path.insert(0, sys.argv[1])
    from test_grad_accum import word_data, cfg_for, no_dropout, weights
    from fastai.callback.core import Callback
    from electra_gdes.distributed import distributed_pretrain_learner, cleanup_distributed, is_rank0
    from electra_gdes.train import fit_steps

    class CountAllReduce(Callback):
        "Count DDP's gradient all-reduces (one per bucket and synchronised backward)."
        order = 0   # after DDPCallback has wrapped the model
        def before_fit(self):
            self.n = 0
            def hook(state, bucket):
                self.n += 1
                fut = torch.distributed.all_reduce(bucket.buffer().div_(2), async_op=True).get_future()
                return fut.then(lambda f: f.value()[0])
            self.learn.model.register_comm_hook(None, hook)

    out, accum = sys.argv[2], int(sys.argv[3])
    tok, ds = word_data()
    counter = CountAllReduce()
    learn = no_dropout(distributed_pretrain_learner(cfg_for(out, f'ddp{accum}', accum), ds, tok, cbs=[counter], backend='gloo'))
    fit_steps(learn)
    if is_rank0():
        torch.save(weights(learn), f'{out}/ddp{accum}.pt')
        json.dump({'all_reduces': counter.n}, open(f'{out}/ddp{accum}.json', 'w'))
    cleanup_distributed()
''')

def _torchrun(tmp_path, accum):
    script = tmp_path/'worker.py'; script.write_text(WORKER)
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'HF_HUB_OFFLINE': '1', 'HF_DATASETS_OFFLINE': '1', 'TOKENIZERS_PARALLELISM': 'false'}
    p = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2', str(script),
                        str(Path(__file__).parent), str(tmp_path), str(accum)], env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    return torch.load(tmp_path/f'ddp{accum}.pt'), json.loads((tmp_path/f'ddp{accum}.json').read_text())['all_reduces']

def test_two_processes_with_two_micro_batches_equal_one_process_without(tmp_path):
    tok, ds = word_data()
    learn = no_dropout(pretrain_learner(cfg_for(tmp_path, 'single', 1), ds, tok, device=torch.device('cpu')))
    fit_steps(learn)
    w_ddp2, reduces = _torchrun(tmp_path, 2)
    assert_same_run(tmp_path/'single', tmp_path/'ddp2', weights(learn), w_ddp2)
    # the tiny model's gradients fit one DDP bucket: one all-reduce per optimizer step, none on the first micro-batch
    # of each step (DDP no_sync); without no_sync there would be 2 per step
    assert reduces == STEPS, reduces
