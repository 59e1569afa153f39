"""Throughput of pretraining (RTD step, earlier kits' way vs ours), GLUE and SQuAD fine-tuning (dynamic vs fixed padding) and data.

    python scripts/benchmark.py --threads 1                      # all three sections, writes bench_results.json
    python scripts/benchmark.py --sizes tiny --steps 2 --out /tmp/bench.json
    python scripts/benchmark.py --sections finetune data         # only the fine-tuning and data pipeline sections
    python scripts/benchmark.py --sections squad --threads 1     # SQuAD windows: padded to 512 vs to the batch, batched by length
    python scripts/benchmark.py --sections host --threads 1      # host overhead of the real Learner step (--compile: compiled too)
    python scripts/benchmark.py --sections learner --sizes small --compile   # the real Learner's steps/s and MFU (a GPU)

Section `pretrain`:

Variants, all with the same model weights, batches, masks and sampling noise:
  baseline   generator logits over every position (HF ElectraForMaskedLM as called by earlier kits: MLM loss with
             labels -100 outside the mask), batches padded to max_length, eager fp32, torch.optim.AdamW
  ours-fp32  `RTDModel`: generator logits at masked positions only, batches padded to their longest example (fp32),
             the training code's optimiser (`adam_no_bias_correction` on the no-decay groups, multi-tensor step)
  ours-bf16  the same under bf16 autocast; timed where the device multiplies bf16 natively (a GPU with bf16, a CPU
             with AVX512-BF16 or AMX), elsewhere only with --bf16: emulated bf16 is tens of times slower than fp32, and
             ours-fp32 is then the headline variant that the learner loop, --compile and the breakdown use
Our variants use the attention and dropout implementation the training code picks by default (`--attention auto`,
`model.resolve_attention`: on a CPU, eager attention and dropout masks from 31-bit random integers; SDPA on a GPU);
the baseline keeps HF's default (SDPA, `F.dropout`).
Before timing, the losses of one batch are compared in eval mode (no dropout): baseline vs ours-fp32 must agree to
fp32 rounding, ours-bf16 within 1e-2 relative. Throughput counts real (non-pad) tokens per second. Achieved FLOP/s
use the FLOPs that `torch.utils.flop_counter` counts for the variant's own step (forward + backward), as fractions of
the fp32 and bf16 matmul peaks measured here with a large `torch.matmul` (before and after, the best counts); the JSON also has the useful FLOP/s (the
FLOPs of our masked-only step, the work every variant must do, per second of the variant). The variants take turns on every batch
and each one's fastest step counts (the median is in the JSON too), so that other load on a shared machine affects
them alike and as little as possible. Batches are drawn with ELECTRA's example
builder (`electra_gdes.data`) from synthetic documents of random tokens: most examples fill max_length, 5% have a
random target length, document ends flush short ones.

With `--compile`, a fourth variant, the headline one under `torch.compile` (as `--compile` trains), is compiled once (its
compile time is reported), checked against the eager loss at its precision and timed with the others.
Then (`--learner`, on by default) the headline step runs inside the real training loop, `pretrain_learner` with its
default callbacks (masking on the device, schedule, clipping, non-finite and preemption checks, logging) on the same
synthetic examples: the loop's own overhead shows as the gap to the bare step. Steps per second and the
projected hours for 1M steps (at the benchmark's batch size) are in the JSON and the printout.

After timing, one step of each variant named by `--breakdown` (default: the headline variant) runs under torch's profiler: the
JSON and the printout give the time of forward+backward and of the optimizer step, and the share of the ops' own time
that goes to matrix products, random numbers (dropout masks and Gumbel noise), copies and casts, softmax, GELU and
LayerNorm, and everything else, with the top ops by name: what takes the time the matrix products do not.

Section `finetune`: examples per second of one fine-tuning step (forward, cross-entropy, backward, AdamW step) of an
ELECTRA-small-shaped `GlueClassifier` built by the fine-tuning code (`glue_classifier`) on a randomly initialised
discriminator saved with the bert-uncased tokenizer, batches padded to their longest example (`glue_collate`, as the
fine-tuning loaders do) vs every batch padded to max_length 128. With the default `--finetune-lengths sst2-like` each
sentence has a number of words drawn from a log-normal of mean 13 and standard deviation 8.5 words, cut to 1..56 (about
SST-2's: a mean of 13 words with a long tail; an approximation, not fitted to the real data, which is not read here), and
its words are a random run of the practice suite's SST-2 training text, so the tokenizer splits real words. `practice`
uses the practice suite's sentences as they are (6 to 30 words: shorter than SST-2's tail, a larger speedup). The token
lengths of the examples are in the JSON. Both variants start from the same weights, see the same batches and take
turns on every batch, which each of them steps on `--finetune-repeats` times. Examples per second divide all examples
by the sum of each batch's fastest step (batches differ in length, so a fastest step over batches would pick the
shortest one); the JSON also has the rate over all steps and the median over batches of the per-batch speedup. Before
timing, the eval-mode losses of one batch under the two paddings must
agree to fp32 rounding (the attention mask makes padding invisible).

Section `squad`: SQuAD fine-tuning windows per second (forward, span loss, backward, AdamW step) of an ELECTRA-small
`SquadQA` built by the SQuAD code (`squad_model`) on a randomly initialised discriminator, on windows of the SQuAD 1.1
training questions (`--squad-dir`, default the offline practice set) cut as the fine-tuning cuts them (`squad_features`:
512 tokens, doc stride 128, questions of at most 64 tokens). Three variants on the same `--squad-steps` batches of
windows and the same weights: `pad-512`, random batches with every window padded to 512 (what a fixed-shape loader
does); `dynamic`, the same batches padded to their longest window; `length-grouped`, the same windows batched by length
as the training loader batches them (`LengthGroupedBatches`), padded to their longest. Before timing, the eval-mode
losses of one batch padded to 512 and not must agree to fp32 rounding (the answer mask makes padding invisible).
Windows per second divide all windows by the sum of each batch's fastest of `--squad-repeats` steps; the ratios to
`pad-512` are in the JSON and the printout.

Section `data`: MB/s of building the pretraining dataset from the default corpus into a fresh temporary cache
(`scripts/bench_data.py`'s measurement, ELECTRA's builder in one process by default).

Section `host`: what the real training step costs the host. `pretrain_learner` and fastai's fit (masking, sampling,
loss, callbacks, backward, optimizer: the public API only, nothing of the step's internals) at ELECTRA-small depth (12
discriminator and 12 generator layers) with a tiny width (`HOST_SHAPE`), a word-level vocabulary of `--host-vocab` words
and examples of `--host-max-length` tokens, so that the arithmetic is small; each variant in a fresh process, at each of
`--host-batches`. Per steady-state step (after `--host-warmup` steps): host ms (end of one batch to the end of the next,
not synchronised with the device; the fastest of `--host-steps`, the median in the JSON), and from torch's profiler over
`--host-profiled` more steps the `aten::` ops (all, and the kernel-level ones that call no other aten op), the ops that
make the host wait for the device (`HOST_SYNC_OPS`: boolean-mask indexing's nonzero, `.item()`'s _local_scalar_dense,
masked_select; one inside another counts once; on a GPU also CUDA kernels and synchronising runtime calls) and the ops'
own CPU time. Variants: `baseline`, the library of git commit `--host-baseline` (default `HOST_BASELINE`, main before
issue 21's rewrite of the step) extracted with `git archive` and put first on the child's path; `eager`, this checkout;
`compiled` (with `--compile`; `--compile-config` fields too), bounded by `--host-timeout`. Ops at the largest batch over
the smallest (1.0: the step's work does not grow with the batch) and host ms over the baseline's are in the JSON and
the table.

Section `learner`: the real Learner's steps/s at the presets of `--sizes` (eager; compiled with `--compile` or
`--learner-variants`), a window of `--learner-steps` steps synchronised at both ends after `--learner-warmup` steps, on
synthetic examples; FLOPs per step from torch's flop counter over one eager step, MFU against the GPU's spec bf16 dense
peak (`BF16_SPEC_TFLOPS`, by device name; None for an unknown GPU or a CPU), hours for 1M steps. scripts/gpu_check.sh
reports these.
"""
from __future__ import annotations
import argparse, importlib.util, json, math, os, platform, random, statistics, sys, tempfile, time, warnings
from collections import Counter
from pathlib import Path

os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('HF_DATASETS_OFFLINE', '1')
import torch
import torch.nn.functional as F
from datasets import Dataset
from fastai.callback.core import Callback
from torch.utils.flop_counter import FlopCounterMode
from tqdm.auto import tqdm

from electra_gdes.config import ATTENTIONS, PRECISIONS, pretrain_config
from electra_gdes.data import electra_document_examples, load_corpus, load_tokenizer, pad_collate
from electra_gdes.train import fit_steps, link_torch_without_spaces, pretrain_learner
from electra_gdes.device import cpu_has_fast_bf16
from electra_gdes.glue_data import glue_collate, glue_tokenize, load_glue
from electra_gdes.glue_model import glue_classifier, quiet_hf
from electra_gdes.model import (MODEL_CLASSES, build_rtd_model, discriminator_config, resolve_attention,
                                 set_attention)
from electra_gdes.export import save_pretrained_atomic
from electra_gdes.optim import no_decay_param_groups, pretrain_opt_func
try:   # internals of the RTD step that only the `pretrain` section uses; the `host` section needs the public API only
    from electra_gdes.model import RTDOutput
    from electra_gdes.rtd import RTDLoss, mask_tokens, masked_positions, masked_slots, rtd_labels
    RTD_INTERNALS_ERROR = None
except ImportError as e: RTD_INTERNALS_ERROR = e


def matmul_peak(dtype: torch.dtype, device: str, n: int, reps: int = 5) -> float:
    "FLOP/s of an n x n x n `torch.matmul` in `dtype` on `device` (best of `reps` after a warmup)."
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    torch.matmul(a, b); sync(device)
    best = float('inf')
    for _ in range(reps):
        t = time.perf_counter(); torch.matmul(a, b); sync(device)
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best


def sync(device: str):
    if device.startswith('cuda'): torch.cuda.synchronize()


def synthetic_examples(tokenizer, n: int, max_length: int, seed: int) -> list[dict]:
    "`n` examples built by ELECTRA's builder from documents of random sentences of random non-special tokens."
    rng = random.Random(seed)
    special = set(tokenizer.all_special_ids)
    vocab = [i for i in range(len(tokenizer)) if i not in special]
    examples = []
    while len(examples) < n:
        doc = [[rng.choice(vocab) for _ in range(rng.randint(5, 40))] for _ in range(rng.randint(10, 200))]
        for ids, types in electra_document_examples(doc, max_length, tokenizer.cls_token_id, tokenizer.sep_token_id, rng):
            examples.append(dict(input_ids=ids, token_type_ids=types))
    rng.shuffle(examples)
    return examples[:n]


def make_batches(cfg, tokenizer, batch_size: int, n_batches: int, device: str, seed: int) -> list[dict]:
    "Each batch twice: padded to its longest example (ours) and to max_length (baseline), with the same mask."
    examples = synthetic_examples(tokenizer, batch_size * n_batches, cfg.max_length, seed)
    gen = torch.Generator().manual_seed(seed)
    batches = []
    for i in range(n_batches):
        chunk = examples[i * batch_size:(i + 1) * batch_size]
        ids, attn, tt = pad_collate(chunk, tokenizer.pad_token_id)
        masked, is_masked = mask_tokens(ids, attn, tokenizer.all_special_ids, tokenizer.mask_token_id, len(tokenizer),
                                        cfg.mask_prob, cfg.mask_style, gen, max_length=cfg.max_length)
        pad = cfg.max_length - ids.shape[1]
        full = lambda x, v: F.pad(x, (0, pad), value=v)   # right padding keeps is_masked.nonzero() order
        dyn = dict(ids=ids, attn=attn, tt=tt, masked=masked, is_masked=is_masked)
        fixed = dict(ids=full(ids, tokenizer.pad_token_id), attn=full(attn, 0), tt=full(tt, 0),
                     masked=full(masked, tokenizer.pad_token_id), is_masked=full(is_masked, False))
        batches.append(dict(ours={k: v.to(device) for k, v in dyn.items()},
                            # the baseline draws its samples in ours' slot layout: the same noise, the same samples
                            baseline={**{k: v.to(device) for k, v in fixed.items()},
                                      'slots': masked_slots(cfg.mask_prob, cfg.max_length, ids.shape[1])},
                            tokens=int(attn.sum()), seed=seed + i))
    return batches


def baseline_forward(model, b, rng) -> tuple[torch.Tensor, None]:
    "The RTD loss as earlier kits computed it: full generator logits, MLM loss with labels -100 outside the mask."
    gen, disc, cfg = model.generator, model.discriminator, model.cfg
    logits = gen(b['masked'], attention_mask=b['attn'], token_type_ids=b['tt']).logits           # [B, L, V]
    labels = b['ids'].masked_fill(~b['is_masked'], -100)
    mlm = F.cross_entropy(logits.view(-1, logits.shape[-1]).float(), labels.view(-1), ignore_index=-100)
    # sampled at the masked positions laid out as ours lays them out ([batch, slots]), so that one generator's noise
    # gives both the same samples and the losses can be compared
    positions, valid = masked_positions(b['is_masked'], b['slots'])
    sampled = model.sample(logits.gather(1, positions[..., None].expand(-1, -1, logits.shape[-1])).detach().float(), cfg.temperature, rng)
    disc_input = b['masked'].scatter(1, positions, torch.where(valid, sampled, b['masked'].gather(1, positions)))
    disc_logits = disc(disc_input, attention_mask=b['attn'], token_type_ids=b['tt']).logits
    real = b['attn'].bool()
    disc_loss = F.binary_cross_entropy_with_logits(disc_logits[real].float(), rtd_labels(disc_input, b['ids'])[real].float())
    return mlm + cfg.disc_weight * disc_loss, None   # only the loss is used


def ours_forward(model, b, rng) -> tuple[torch.Tensor, RTDOutput]:
    out = model(b['masked'], b['attn'], b['tt'], b['is_masked'], rng=rng)
    return RTDLoss(model.cfg.disc_weight)(out, b['ids'], b['is_masked'], b['attn']), out


VARIANTS = {'baseline': ('baseline', baseline_forward, None), 'ours-fp32': ('ours', ours_forward, None),
            'ours-bf16': ('ours', ours_forward, torch.bfloat16),
            # measured with --compile only: torch.compile of the whole RTD model (cfg.compile), at the headline precision
            'ours-bf16-compiled': ('ours', ours_forward, torch.bfloat16), 'ours-fp32-compiled': ('ours', ours_forward, None)}

def headline(args) -> str:
    "Our variant that the learner loop, the compiled variant and the breakdown use: bf16 where the device has it (--bf16)."
    return 'ours-bf16' if args.bf16 else 'ours-fp32'

def compiled_variant(args) -> str: return headline(args) + '-compiled'


def attention_of(variant, device, attention='auto') -> str:
    "The attention implementation of `variant`: HF's default for the baseline, `attention` resolved as training does for ours."
    if VARIANTS[variant][0] == 'baseline': return 'sdpa'
    return resolve_attention(attention, device)


def loss_of(variant, model, batch, device, attention='auto') -> float:
    key, forward, dtype = VARIANTS[variant]
    set_attention(model, attention_of(variant, device, attention))
    rng = torch.Generator(device=device).manual_seed(batch['seed'])
    with torch.no_grad(), torch.autocast(device.split(':')[0], dtype=dtype or torch.bfloat16, enabled=dtype is not None):
        return forward(model, batch[key], rng)[0].item()


def train_step(variant, model, opt, batch, device):
    key, forward, dtype = VARIANTS[variant]
    rng = torch.Generator(device=device).manual_seed(batch['seed'])
    with torch.autocast(device.split(':')[0], dtype=dtype or torch.bfloat16, enabled=dtype is not None):
        loss, _ = forward(model, batch[key], rng)
    loss.backward()
    opt.step(); opt.zero_grad()   # both optimisers drop the gradients (set_to_none)


# what the time of a step goes to: each op's own (self) time, summed by group; ops in no group count as "other"
OP_GROUPS = {
    'matrix products': ('aten::mm', 'aten::addmm', 'aten::bmm', 'aten::baddbmm'),
    'random numbers (dropout masks, Gumbel noise)': ('aten::bernoulli_', 'aten::random_', 'aten::uniform_', 'aten::normal_',
                                                     'aten::exponential_'),
    'copies and dtype casts': ('aten::copy_', 'aten::_to_copy', 'aten::clone'),
    'softmax and log-softmax (fwd+bwd)': ('aten::_softmax', 'aten::_softmax_backward_data', 'aten::_log_softmax',
                                          'aten::_log_softmax_backward_data'),
    'GELU and LayerNorm (fwd+bwd)': ('aten::gelu', 'aten::gelu_backward', 'aten::native_layer_norm',
                                     'aten::native_layer_norm_backward'),
}


def step_breakdown(variant, model, opt, batch, device) -> dict:
    """Seconds of one training step of `variant` by phase (forward+backward, optimizer) and, within forward+backward, by
    `OP_GROUPS` from torch's profiler (device time on a GPU, CPU time otherwise; the profiler adds a little overhead)."""
    from torch.profiler import ProfilerActivity, profile
    key, forward, dtype = VARIANTS[variant]
    gpu = device.startswith('cuda')
    rng = torch.Generator(device=device).manual_seed(batch['seed'])
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if gpu else [])
    sync(device); t0 = time.perf_counter()
    with profile(activities=activities) as prof:
        with torch.autocast(device.split(':')[0], dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            loss, _ = forward(model, batch[key], rng)
        loss.backward()
        sync(device)
    t1 = time.perf_counter()
    opt.step(); opt.zero_grad(); sync(device)
    t2 = time.perf_counter()
    own = {e.key: (e.self_device_time_total if gpu else e.self_cpu_time_total) / 1e6 for e in prof.key_averages()}
    ops = sum(own.values())
    groups = {g: sum(own.get(k, 0.0) for k in keys) for g, keys in OP_GROUPS.items()}
    groups['other ops (elementwise, reductions, indexing)'] = ops - sum(groups.values())
    top = sorted(own.items(), key=lambda kv: -kv[1])[:10]
    return dict(forward_backward_s=t1 - t0, optimizer_s=t2 - t1, op_time_s=ops,
                groups_s=groups, top_ops_s=dict(top), profiled_on='gpu' if gpu else 'cpu')


def step_flops(variant, model, batch, device) -> int:
    "FLOPs of the variant's forward + backward on `batch`, as counted by torch's flop counter."
    key, forward, dtype = VARIANTS[variant]
    rng = torch.Generator(device=device).manual_seed(batch['seed'])
    with FlopCounterMode(display=False) as counter:
        with torch.autocast(device.split(':')[0], dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            loss, _ = forward(model, batch[key], rng)
        loss.backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def fresh_model(cfg, tokenizer, device, seed=0):
    torch.manual_seed(seed)
    return build_rtd_model(cfg, tokenizer).to(device)


class StepTimer(Callback):
    "Seconds between the ends of consecutive training batches: data loading, masking, callbacks and the step itself."
    order = 200   # after every other callback's after_batch
    def __init__(self, device): self.device, self.times, self.last = device, [], None
    def after_batch(self):
        sync(self.device); t = time.perf_counter()
        if self.last is not None: self.times.append(t - self.last)
        self.last = t


def bench_learner(size, args, tokenizer) -> dict:
    """The headline step (ours-bf16, or ours-fp32 with --no-bf16) inside the real training loop: `pretrain_learner`
    (default callbacks: masking on the device, schedule, clipping, non-finite and preemption checks, logging) on the same
    synthetic examples, no checkpoints."""
    n = args.warmup + args.steps + 1          # the first step only starts the timer
    with tempfile.TemporaryDirectory() as tmp:
        cfg = pretrain_config('electra', size, embedding_sharing=args.sharing, precision='bf16' if args.bf16 else 'fp32', attention=args.attention,
                              batch_size=args.batch_size, steps=n, warmup_steps=1, checkpoint_fractions=(1.0,), output_dir=tmp,
                              log_every=n, seed=args.seed)
        examples = synthetic_examples(tokenizer, args.batch_size * n, cfg.max_length, args.seed)
        learn = pretrain_learner(cfg, Dataset.from_list(examples), tokenizer, device=torch.device(args.device))
        timer = StepTimer(args.device)
        learn.add_cb(timer)
        with learn.no_bar(), learn.no_logging(): fit_steps(learn)
    times = timer.times[args.warmup:]
    tokens = args.batch_size * sum(len(e['input_ids']) for e in examples) / len(examples)
    return dict(sec_per_step=min(times), sec_per_step_median=statistics.median(times), step_times=times,
                tokens_per_s=tokens / min(times))


def bench_size(size, args, tokenizer) -> dict:
    cfg = pretrain_config('electra', size, embedding_sharing=args.sharing)
    COMPILED, ours = compiled_variant(args), headline(args)
    if args.compile and not args.device.startswith('cuda'): link_torch_without_spaces()   # as compile_step does for training
    variants = ['baseline', 'ours-fp32', *(['ours-bf16'] if args.bf16 else []), *([COMPILED] if args.compile else [])]
    batches = make_batches(cfg, tokenizer, args.batch_size, args.warmup + args.steps, args.device, args.seed)
    check = fresh_model(cfg, tokenizer, args.device).eval()
    losses = {v: loss_of(v, check, batches[0], args.device, args.attention) for v in variants if v != COMPILED}
    if args.compile:  # the compiled forward must give the loss of the eager one
        check.compile()
        losses[COMPILED] = loss_of(COMPILED, check, batches[0], args.device, args.attention)
    del check
    res = dict(size=size, batch_size=args.batch_size, max_length=cfg.max_length, embedding_sharing=args.sharing,
               mean_length=sum(b['tokens'] for b in batches) / (len(batches) * args.batch_size),
               padded_length=[b['ours']['ids'].shape[1] for b in batches], losses_eval=losses,
               fp32_loss_rel_diff=abs(losses['ours-fp32'] - losses['baseline']) / abs(losses['baseline']),
               bf16_loss_rel_diff=abs(losses['ours-bf16'] - losses['ours-fp32']) / abs(losses['ours-fp32']) if args.bf16 else None,
               variants={})
    if args.compile: res['compiled_loss_rel_diff'] = abs(losses[COMPILED] - losses[ours]) / abs(losses[ours])
    models = {v: set_attention(fresh_model(cfg, tokenizer, args.device), attention_of(v, args.device, args.attention)).train()
              for v in variants}
    opts = {v: pretrain_opt_func(cfg)(no_decay_param_groups(m), lr=cfg.lr) if VARIANTS[v][0] == 'ours' else
               torch.optim.AdamW(m.parameters(), lr=cfg.lr, betas=(cfg.adam_beta1, cfg.adam_beta2), eps=cfg.adam_eps,
                                 weight_decay=cfg.weight_decay) for v, m in models.items()}
    flops = {v: step_flops(v, models[v], batches[0], args.device) for v in variants if v != COMPILED}
    if args.compile:
        flops[COMPILED] = flops[ours]   # the same math; the counter does not see inside compiled graphs
        models[COMPILED].compile()
        t = time.perf_counter()
        train_step(COMPILED, models[COMPILED], opts[COMPILED], batches[0], args.device)   # compiles forward and backward
        res['compile_seconds'] = time.perf_counter() - t
    for b in batches[:args.warmup]:
        for v in variants: train_step(v, models[v], opts[v], b, args.device)
    # the variants take turns on each batch, so a change in the machine's load hits them alike
    times = {v: [] for v in variants}
    timed = batches[args.warmup:]
    for b in tqdm(timed, desc=f'ELECTRA-{size} steps ({len(variants)} variants each)', file=sys.stdout):
        for v in variants:
            sync(args.device); t = time.perf_counter()
            train_step(v, models[v], opts[v], b, args.device)
            sync(args.device); times[v].append(time.perf_counter() - t)
    tokens = sum(b['tokens'] for b in timed) / len(timed)
    for v in variants:
        # the fastest step: other load on a shared machine only ever slows a step down (the median is kept too)
        sec = min(times[v])
        res['variants'][v] = dict(attention=attention_of(v, args.device, args.attention), sec_per_step=sec,
                                  sec_per_step_median=statistics.median(times[v]), step_times=times[v],
                                  tokens_per_s=tokens / sec, flops_per_step=flops[v],
                                  achieved_flops_per_s=flops[v] / sec,
                                  # the work the step needs (ours: masked-only logits), whatever the variant computes
                                  useful_flops_per_s=flops['ours-fp32'] / sec)
    res['breakdown'] = {v: step_breakdown(v, models[v], opts[v], timed[0], args.device) for v in args.breakdown if v in models}
    if args.learner: res['learner'] = bench_learner(size, args, tokenizer)
    base = res['variants']['baseline']['tokens_per_s']
    for v in [*res['variants'].values(), *([res['learner']] if args.learner else [])]:
        v['speedup_vs_baseline'] = v['tokens_per_s'] / base
        v['steps_per_s'] = 1 / v['sec_per_step']
        v['hours_per_1M_steps'] = v['sec_per_step'] * 1e6 / 3600
    return res


def add_peak_fractions(res: dict, peaks: dict):
    "Achieved FLOP/s of each variant of `res` as fractions of the fp32 and bf16 matmul `peaks` (and of its own dtype's)."
    for name, v in res['variants'].items():
        own = peaks['bf16' if VARIANTS[name][2] is torch.bfloat16 else 'fp32']
        v.update(fraction_of_peak=v['achieved_flops_per_s'] / own, fraction_of_fp32_peak=v['achieved_flops_per_s'] / peaks['fp32'],
                 fraction_of_bf16_peak=v['achieved_flops_per_s'] / peaks['bf16'])


FINETUNE_VARIANTS = ('fixed-128', 'dynamic')


def finetune_batches(rows: list[dict], batch_size: int, n_batches: int, max_length: int, pad_token_id: int, seed: int) -> list[dict]:
    "`n_batches` batches of shuffled `glue_tokenize` rows, each padded to its longest example and to `max_length`."
    if len(rows) < batch_size * n_batches:
        raise ValueError(f'{len(rows)} fine-tuning examples cannot fill {n_batches} batches of {batch_size}: pass fewer '
                         f'--finetune-steps or a smaller --batch-size.')
    rows = random.Random(seed).sample(rows, batch_size * n_batches)
    chunks = [rows[i * batch_size:(i + 1) * batch_size] for i in range(n_batches)]
    # max_length is at least every row's length, so padding to a multiple of it pads to exactly max_length
    return [{'dynamic': glue_collate(c, pad_token_id), 'fixed-128': glue_collate(c, pad_token_id, pad_to_multiple_of=max_length)}
            for c in chunks]


SST2_WORDS = dict(mean=13.0, sd=8.5, max=56)  # approximately SST-2's words per sentence (see the docstring)


def sst2_like_sentences(text: list[str], n: int, seed: int, mean=SST2_WORDS['mean'], sd=SST2_WORDS['sd'], most=SST2_WORDS['max']) -> list[str]:
    "`n` runs of consecutive words of `text`, their lengths log-normal with `mean` and `sd` words, cut to 1..`most`."
    words = ' '.join(text).split()
    if len(words) < 2 * most: raise ValueError(f'{len(words)} words are too few to cut sentences of up to {most} words from.')
    rng = random.Random(seed)
    sigma2 = math.log(1 + (sd / mean) ** 2)  # log-normal parameters of the given mean and standard deviation
    mu, sigma = math.log(mean) - sigma2 / 2, math.sqrt(sigma2)
    out = []
    for _ in range(n):
        k = min(most, max(1, round(rng.lognormvariate(mu, sigma))))
        start = rng.randrange(len(words) - k)
        out.append(' '.join(words[start:start + k]))
    return out


def finetune_loss(model, b) -> torch.Tensor:
    return F.cross_entropy(model(b['input_ids'], b['attention_mask'], b['token_type_ids']), b['labels'])


def bench_finetune(args, tokenizer) -> dict:
    cfg = pretrain_config('electra', 'small')
    max_length = 128
    with quiet_hf(): task = load_glue('sst2', practice=True, cache_dir=args.cache_dir)
    ds, n = task.train, args.batch_size * (args.finetune_steps + 1)
    if args.finetune_lengths == 'sst2-like':
        sentences = sst2_like_sentences(ds['sentence1'], n, args.seed)
        ds = Dataset.from_dict(dict(sentence1=sentences, sentence2=[''] * n, label=[i % 2 for i in range(n)]))
    with quiet_hf(): rows = glue_tokenize(ds, tokenizer, max_length).select_columns(
        ['input_ids', 'attention_mask', 'token_type_ids', 'label']).to_list()
    batches = finetune_batches(rows, args.batch_size, args.finetune_steps + 1, max_length, tokenizer.pad_token_id, args.seed)
    batches = [{v: {k: t.to(args.device) for k, t in b[v].items()} for v in FINETUNE_VARIANTS} for b in batches]
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(args.seed)
        disc = MODEL_CLASSES['electra'][1](discriminator_config(cfg, tokenizer))
        save_pretrained_atomic(disc, tokenizer, Path(tmp)/'discriminator')
        models = {}
        for v in FINETUNE_VARIANTS:
            torch.manual_seed(args.seed)  # the same classifier head for both variants
            models[v] = glue_classifier(Path(tmp)/'discriminator', task.num_labels)[0].to(args.device)
    lengths = [len(r['input_ids']) for r in rows]
    res = dict(model='ELECTRA-small discriminator (random init) + GlueClassifier head', sentences=args.finetune_lengths,
               words_per_sentence=SST2_WORDS if args.finetune_lengths == 'sst2-like' else 'practice suite SST-2 train',
               batch_size=args.batch_size, max_length=max_length, optimizer='torch.optim.AdamW(lr=1e-4, weight_decay=0.01)',
               example_tokens=dict(mean=statistics.mean(lengths), median=statistics.median(lengths), max=max(lengths),
                                   p95=sorted(lengths)[int(0.95 * len(lengths))], n=len(lengths)),
               padded_length={v: [b[v]['input_ids'].shape[1] for b in batches] for v in FINETUNE_VARIANTS})
    with torch.no_grad():
        losses = {v: finetune_loss(models[v].eval(), batches[0][v]).item() for v in FINETUNE_VARIANTS}
    res.update(losses_eval=losses, loss_rel_diff=abs(losses['dynamic'] - losses['fixed-128']) / abs(losses['fixed-128']))
    opts = {v: torch.optim.AdamW(m.train().parameters(), lr=1e-4, weight_decay=0.01) for v, m in models.items()}

    def step(v, b):
        finetune_loss(models[v], b[v]).backward()
        opts[v].step(); opts[v].zero_grad(set_to_none=True)

    for v in FINETUNE_VARIANTS: step(v, batches[0])  # warmup (allocations, AdamW state)
    # batches differ in length, so each batch's own fastest step counts (a fastest over batches would pick the shortest);
    # the variants take turns on every batch and every repeat, so a change in the machine's load hits them alike
    times = {v: [[] for _ in batches[1:]] for v in FINETUNE_VARIANTS}
    for i, b in enumerate(tqdm(batches[1:], desc=f'fine-tuning batches (2 variants x {args.finetune_repeats})', file=sys.stdout)):
        for _ in range(args.finetune_repeats):
            for v in FINETUNE_VARIANTS:
                sync(args.device); t = time.perf_counter()
                step(v, b)
                sync(args.device); times[v][i].append(time.perf_counter() - t)
    n = args.batch_size * args.finetune_steps
    res['variants'] = {v: dict(step_times=times[v], sec_per_batch=[min(t) for t in times[v]],
                               examples_per_s=n / sum(min(t) for t in times[v]),
                               examples_per_s_all_steps=n * args.finetune_repeats / sum(map(sum, times[v])))
                       for v in FINETUNE_VARIANTS}
    dyn, fixed = res['variants']['dynamic'], res['variants']['fixed-128']
    res.update(speedup_dynamic_vs_fixed=dyn['examples_per_s'] / fixed['examples_per_s'],
               speedup_dynamic_vs_fixed_all_steps=dyn['examples_per_s_all_steps'] / fixed['examples_per_s_all_steps'],
               speedup_per_batch_median=statistics.median(f / d for f, d in zip(fixed['sec_per_batch'], dyn['sec_per_batch'])))
    return res


SQUAD_VARIANTS = ('pad-512', 'dynamic', 'length-grouped')


def bench_squad(args, tokenizer) -> dict:
    """SQuAD fine-tuning examples/s: every window padded to 512 (random batches) vs padded to the batch's longest (random
    batches, then windows batched by length as `squad_dataloader` trains), on the same windows and weights."""
    from electra_gdes.squad_data import load_squad
    from electra_gdes.squad_finetune import (LengthGroupedBatches, span_loss, squad_collate, squad_features, squad_model)
    cfg = pretrain_config('electra', args.squad_size)
    with quiet_hf(), warnings.catch_warnings():
        warnings.simplefilter('ignore')   # the synthetic practice set says so once more
        squad = load_squad('1.1', args.squad_dir, practice=not args.squad_dir, cache_dir=args.cache_dir)
    feats = squad_features(squad.train, tokenizer, max_length=512, doc_stride=128, max_query_length=64)
    bs, n_batches = args.batch_size, args.squad_steps + 1
    if len(feats) < bs * n_batches:
        raise ValueError(f'{len(feats)} SQuAD windows cannot fill {n_batches} batches of {bs}: pass fewer --squad-steps or a smaller --batch-size.')
    sample = [feats[i] for i in random.Random(args.seed).sample(range(len(feats)), bs * n_batches)]
    lengths = [len(f['input_ids']) for f in sample]
    random_batches = [list(range(i, i + bs)) for i in range(0, len(sample), bs)]
    grouped = list(LengthGroupedBatches(lengths, bs, seed=args.seed))   # one epoch of the training sampler over the sample
    order = {'pad-512': random_batches, 'dynamic': random_batches, 'length-grouped': grouped}
    batches = {v: [squad_collate([sample[i] for i in b], tokenizer.pad_token_id, 512 if v == 'pad-512' else None) for b in order[v]]
               for v in SQUAD_VARIANTS}
    batches = {v: [tuple(t.to(args.device) for t in b) for b in bb] for v, bb in batches.items()}
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(args.seed)
        save_pretrained_atomic(MODEL_CLASSES['electra'][1](discriminator_config(cfg, tokenizer)), tokenizer, Path(tmp)/'discriminator')
        models = {v: squad_model(Path(tmp)/'discriminator', seed=args.seed)[0].to(args.device) for v in SQUAD_VARIANTS}
    for m in models.values(): set_attention(m, resolve_attention(args.attention, args.device))
    res = dict(model=f'ELECTRA-{args.squad_size} discriminator (random init) + SquadQA span head', batch_size=bs, max_length=512, doc_stride=128,
               data=str(squad.source), optimizer='torch.optim.AdamW(lr=1e-4, weight_decay=0.01)',
               window_tokens=dict(mean=statistics.mean(lengths), median=statistics.median(lengths), max=max(lengths),
                                  p95=sorted(lengths)[int(0.95 * len(lengths))], n=len(lengths)),
               padded_length={v: [b[0].shape[1] for b in batches[v]] for v in SQUAD_VARIANTS})
    with torch.no_grad():   # the answer mask makes padding invisible: the same loss padded to 512 or not
        losses = {v: span_loss(models[v].eval()(*batches[v][0][:3]), batches[v][0][3]).item() for v in ('pad-512', 'dynamic')}
    res.update(losses_eval=losses, loss_rel_diff=abs(losses['dynamic'] - losses['pad-512']) / abs(losses['pad-512']))
    opts = {v: torch.optim.AdamW(m.train().parameters(), lr=1e-4, weight_decay=0.01) for v, m in models.items()}

    def step(v, b):
        span_loss(models[v](*b[:3]), b[3]).backward()
        opts[v].step(); opts[v].zero_grad(set_to_none=True)

    for v in SQUAD_VARIANTS: step(v, batches[v][0])   # warmup (allocations, AdamW state)
    times = {v: [] for v in SQUAD_VARIANTS}   # per variant, per batch: its fastest of --squad-repeats steps
    for i in tqdm(range(1, n_batches), desc=f'SQuAD batches ({len(SQUAD_VARIANTS)} variants x {args.squad_repeats})', file=sys.stdout):
        for v in SQUAD_VARIANTS:   # the variants take turns on every batch, so that a change in the machine's load hits them alike
            t_batch = []
            for _ in range(args.squad_repeats):
                sync(args.device); t = time.perf_counter()
                step(v, batches[v][i])
                sync(args.device); t_batch.append(time.perf_counter() - t)
            times[v].append(min(t_batch))
    n = bs * args.squad_steps
    res['variants'] = {v: dict(sec_per_batch=times[v], examples_per_s=n / sum(times[v])) for v in SQUAD_VARIANTS}
    base = res['variants']['pad-512']['examples_per_s']
    res.update(speedup_dynamic_vs_pad512=res['variants']['dynamic']['examples_per_s'] / base,
               speedup_length_grouped_vs_pad512=res['variants']['length-grouped']['examples_per_s'] / base)
    return res


def bench_data_pipeline(args) -> dict:
    "`scripts/bench_data.py`'s measurement: build the pretraining dataset of the default corpus into a fresh temporary cache."
    spec = importlib.util.spec_from_file_location('bench_data', Path(__file__).with_name('bench_data.py'))
    bench_data = importlib.util.module_from_spec(spec); spec.loader.exec_module(bench_data)
    cfg = pretrain_config('electra', 'small', cache_dir=args.cache_dir)
    corpus, tokenizer = load_corpus(cfg), load_tokenizer(cfg)
    with quiet_hf():
        return bench_data.bench(args.data_builder, args.data_num_proc, cfg.max_length, corpus, tokenizer, args.cache_dir)


# ---------------------------------------------------------------------------------------------------------------------
# Section `host`: what the real training step costs the host, with the model's arithmetic made negligible
# ---------------------------------------------------------------------------------------------------------------------
HOST_BASELINE = 'a89836ad1dcf3e9a76fc96c0e0223ec92c8c3a20'   # main before issue 21's step rewrite: the naive Learner
HOST_SHAPE = dict(hidden_size=32, num_heads=4, intermediate_size=64, embedding_size=16)   # ELECTRA-small depth, tiny width
# ops that make the host wait for the device: boolean-mask indexing (nonzero), .item()/float()/bool() of a tensor
# (_local_scalar_dense), masked_select; a sync op called inside another one (nonzero inside masked_select) counts once
HOST_SYNC_OPS = ('aten::nonzero', 'aten::_local_scalar_dense', 'aten::masked_select')
# ops whose CPU kernel reads a tensor's value (the step counts, found_inf) while their CUDA kernel reads it on the device:
# the reads they make are not counted as syncs (JSON: syncs_inside_ops)
CPU_KERNEL_READS = ('aten::_fused_adamw_', 'aten::_fused_adam_', 'aten::_fused_sgd_', 'aten::_fused_adagrad_')
CUDA_SYNC_CALLS = ('cudaStreamSynchronize', 'cudaDeviceSynchronize', 'cudaEventSynchronize', 'cudaMemcpy')


def host_tokenizer(vocab_size: int):
    "A word-level tokenizer of `vocab_size` entries: the five special tokens and words w0, w1, ..."
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast
    special = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]']
    vocab = {t: i for i, t in enumerate(special + [f'w{i}' for i in range(vocab_size - len(special))])}
    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer(WordLevel(vocab, unk_token='[UNK]')), pad_token='[PAD]',
                                   unk_token='[UNK]', cls_token='[CLS]', sep_token='[SEP]', mask_token='[MASK]')


def host_examples(tokenizer, n: int, max_length: int, seed: int) -> list[dict]:
    "`n` examples of `max_length` tokens, [CLS] random words [SEP] (one length: no padding, the same shapes every step)."
    rng = random.Random(seed)
    words = range(5, len(tokenizer))
    return [dict(input_ids=[tokenizer.cls_token_id] + [rng.choice(words) for _ in range(max_length - 2)] + [tokenizer.sep_token_id],
                 token_type_ids=[0] * max_length) for _ in range(n)]


class HostProbe(Callback):
    """Times the training steps of a window after `warmup` ones (from the end of one batch to the end of the next: data
    loading, masking, callbacks, forward, backward, optimizer), then runs torch's profiler over the next `profiled`.
    Steps are not synchronised with the device: on a GPU a step's time is the host's (the device runs behind); the whole
    window is, at both ends, and its mean is the real time per step."""
    order = 250   # after every other callback's after_batch
    def __init__(self, device, warmup: int, timed: int, profiled: int):
        self.device, self.warmup, self.timed, self.profiled = device, warmup, timed, profiled
        self.n, self.last, self.times, self.window_s, self.prof, self.events = 0, None, [], None, None, None

    def after_batch(self):
        if not self.training: return
        self.n, t = self.n + 1, time.perf_counter()
        if self.n == self.warmup:
            sync(self.device); t = self.window_t0 = time.perf_counter()
        elif self.warmup < self.n <= self.warmup + self.timed: self.times.append(t - self.last)
        if self.n == self.warmup + self.timed:
            sync(self.device); self.window_s = time.perf_counter() - self.window_t0
        if self.n == self.warmup + self.timed and self.profiled:
            from torch.profiler import ProfilerActivity, profile
            acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if self.device.startswith('cuda') else [])
            self.prof = profile(activities=acts, with_stack=True); self.prof.__enter__()   # stacks: where the syncs come from
        elif self.prof is not None and self.n == self.warmup + self.timed + self.profiled:
            sync(self.device); self.prof.__exit__(None, None, None)
            self.events, self.prof = self.prof.events(), None
        self.last = time.perf_counter()


def sync_source(e) -> str:
    """The innermost Python function outside torch that called the op `e` (with `with_stack`, the profiler records
    Python calls as events, parents of the ops they call), as a package-relative path."""
    p = e.cpu_parent
    while p is not None:
        name = p.name.replace('\\', '/')
        if not name.startswith(('aten::', 'torch/', '<built-in')) and '/torch/' not in name and '.py(' in name:
            for anchor in ('/site-packages/', '/electra_gdes/', '/scripts/'):
                if anchor in name: return ('' if anchor == '/site-packages/' else anchor.strip('/') + '/') + name.split(anchor, 1)[1]
            return name.rsplit('/', 1)[-1]
        p = p.cpu_parent
    return '?'


def host_counts(events, steps: int) -> dict:
    "Per step: aten ops (all, and those that call no other aten op), ops that sync the host, other profiler events."
    aten = [e for e in events if e.name.startswith('aten::')]
    leaf = [e for e in aten if not any(c.name.startswith('aten::') for c in e.cpu_children)]
    def inside_sync(e):
        p = e.cpu_parent
        while p is not None:
            if p.name in HOST_SYNC_OPS: return True
            p = p.cpu_parent
        return False
    def inside_op(e):   # called by the CPU kernel of an op whose CUDA kernel reads the value on the device
        p = e.cpu_parent
        while p is not None and p.name.startswith('aten::'):
            if p.name in CPU_KERNEL_READS: return p.name
            p = p.cpu_parent
        return None
    found = [e for e in aten if e.name in HOST_SYNC_OPS and not inside_sync(e)]
    # e.g. the CPU kernel of torch._fused_adamw_ reads each step count with .item(): no device to wait for on a CPU, and
    # the CUDA kernel reads it on the device; kept apart, by the op that called it
    in_kernels = Counter(f'{inside_op(e)} ({e.name[6:]})' for e in found if inside_op(e))
    syncs = [e for e in found if not inside_op(e)]
    by_op = {op: sum(e.name == op for e in syncs) / steps for op in HOST_SYNC_OPS}
    sources = Counter(f'{sync_source(e)} ({e.name[6:]})' for e in syncs)
    top = Counter(e.name for e in leaf)
    own_ms = Counter()
    for e in aten: own_ms[e.name] += e.self_cpu_time_total / 1e3   # host (CPU) time of the op itself, ms
    res = dict(aten_ops=len(aten) / steps, leaf_aten_ops=len(leaf) / steps, syncs=len(syncs) / steps, syncs_by_op=by_op,
               top_leaf_ops={k: v / steps for k, v in top.most_common(12)},
               op_ms=sum(own_ms.values()) / steps, top_ops_ms={k: v / steps for k, v in own_ms.most_common(12)},
               sync_sources={k: v / steps for k, v in sources.most_common(12)},
               syncs_inside_ops={k: v / steps for k, v in in_kernels.most_common(12)})
    cuda = [e for e in events if getattr(e, 'device_type', None) is not None and 'CUDA' in str(e.device_type)]
    if cuda:   # on a GPU: kernels launched and the runtime calls that wait for the device
        res.update(cuda_kernels=len(cuda) / steps,
                   cuda_sync_calls=sum(e.name in CUDA_SYNC_CALLS for e in events) / steps)
    return res


def host_measure(spec: dict) -> dict:
    """One host measurement: `pretrain_learner` at ELECTRA-small depth with `spec`'s tiny width and vocabulary, fit for
    warmup + timed + profiled steps (+ one more: the step that logs is left out of both windows)."""
    import electra_gdes
    if spec.get('threads'): torch.set_num_threads(spec['threads'])
    tokenizer = host_tokenizer(spec['vocab_size'])
    n = spec['warmup'] + spec['timed'] + spec['profiled'] + 1
    overrides = dict(HOST_SHAPE, max_length=spec['max_length'], batch_size=spec['batch_size'], steps=n, warmup_steps=1,
                     checkpoint_fractions=(1.0,), log_every=n, seed=spec['seed'], compile=spec['compile'])
    if spec.get('precision'): overrides['precision'] = spec['precision']
    if spec['compile']: overrides.update(spec.get('compile_config') or {})
    with tempfile.TemporaryDirectory() as tmp:
        cfg = pretrain_config('electra', 'small', output_dir=tmp, **overrides)
        examples = host_examples(tokenizer, spec['batch_size'] * n, cfg.max_length, spec['seed'])
        t0 = time.perf_counter()
        learn = pretrain_learner(cfg, Dataset.from_list(examples), tokenizer, device=torch.device(spec['device']))
        probe = HostProbe(spec['device'], spec['warmup'], spec['timed'], spec['profiled'])
        learn.add_cb(probe)
        with learn.no_bar(), learn.no_logging(): fit_steps(learn)
        fit_s = time.perf_counter() - t0
    if len(probe.times) != spec['timed'] or probe.events is None:
        raise RuntimeError(f'the Learner ran {probe.n} training steps, not the {n} asked for')
    times = probe.times
    res = dict(library=str(Path(electra_gdes.__file__).parent), precision=cfg.precision, compile=cfg.compile,
               batch_size=spec['batch_size'], host_ms=1e3 * min(times), host_ms_median=1e3 * statistics.median(times),
               step_ms=[1e3 * t for t in times], window_ms_per_step=1e3 * probe.window_s / len(times), fit_s=fit_s,
               threads=torch.get_num_threads(), discriminator_layers=cfg.num_layers)
    res.update(host_counts(probe.events, spec['profiled']))
    if cfg.compile:   # graphs dynamo made and graph breaks, over the whole fit
        from torch._dynamo.utils import counters
        res['dynamo'] = dict(unique_graphs=counters['stats']['unique_graphs'], graph_breaks=sum(counters['graph_break'].values()))
    return res


def _baseline_library(ref: str, root: Path, into: Path) -> Path:
    "The `electra_gdes` package of git commit `ref` of the checkout at `root`, extracted under `into`."
    import subprocess, tarfile, io
    tar = subprocess.run(['git', '-C', str(root), 'archive', ref, 'electra_gdes'], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(tar)) as t: t.extractall(into, filter='data')
    return into


def host_worker(spec: dict, out: Path):
    "`host_measure` at each batch of `spec['batches']`, `out` rewritten after each one (a time limit keeps those done)."
    results = {}
    for b in spec['batches']:
        try: results[str(b)] = dict(host_measure(dict(spec, batch_size=b)), status='ok')
        except Exception as e: results[str(b)] = dict(status=f'failed: {type(e).__name__}: {e}'[:500], batch_size=b)
        write_json_atomic(results, out)


def host_subprocess(spec: dict, timeout: float, library: Path | None = None) -> dict:
    """`host_worker(spec)` in a fresh python (this script's --host-worker), with `library` first on the path if given:
    {batch: result}; a batch not measured in `timeout` seconds has a status that says so."""
    import subprocess
    with tempfile.TemporaryDirectory() as tmp:
        spec_path, out_path = Path(tmp)/'spec.json', Path(tmp)/'result.json'
        spec_path.write_text(json.dumps(spec))
        env = dict(os.environ, **({'OMP_NUM_THREADS': str(spec['threads'])} if spec.get('threads') else {}))
        if library is not None:
            env['PYTHONPATH'] = os.pathsep.join(p for p in (str(library), env.get('PYTHONPATH')) if p)
        try:
            r = subprocess.run([sys.executable, __file__, '--host-worker', str(spec_path), str(out_path)], env=env,
                               capture_output=True, text=True, timeout=timeout)
            why = f'failed (exit {r.returncode}): ' + ' | '.join((r.stdout + r.stderr).strip().splitlines()[-3:]) if r.returncode else None
        except subprocess.TimeoutExpired:
            why = f'not measured: over the {timeout:.0f} s limit (--host-timeout)'
        done = json.loads(out_path.read_text()) if out_path.exists() else {}
        return {str(b): done.get(str(b)) or dict(status=why or 'not measured', batch_size=b) for b in spec['batches']}


def run_host(args) -> dict:
    """The `host` section: per steady-state step of the real Learner, kernel-level ops, ops that sync the host and host
    ms, at each batch of --host-batches, for the library of this checkout (eager; compiled with --compile) and the
    naive baseline (the library of git commit --host-baseline, run from an extracted copy)."""
    root = Path(__file__).resolve().parents[1]
    base = dict(device=args.device, threads=args.threads, seed=args.seed, vocab_size=args.host_vocab,
                max_length=args.host_max_length, warmup=args.host_warmup, timed=args.host_steps, profiled=args.host_profiled,
                precision=args.host_precision)
    variants = {'eager': dict(compile=False)}
    if args.compile: variants['compiled'] = dict(compile=True)
    res = dict(model=dict(HOST_SHAPE, layers='12 (discriminator) + 12 (generator): the ELECTRA-small preset depth',
                          vocab_size=args.host_vocab, max_length=args.host_max_length),
               steps=dict(warmup=args.host_warmup, timed=args.host_steps, profiled=args.host_profiled),
               sync_ops=list(HOST_SYNC_OPS), baseline_ref=None, variants={})
    with tempfile.TemporaryDirectory() as tmp:
        library = None
        if args.host_baseline not in ('', 'none'):
            try:
                library = _baseline_library(args.host_baseline, root, Path(tmp))
                variants = {'baseline': dict(compile=False, library=library), **variants}
                res['baseline_ref'] = args.host_baseline
            except Exception as e:   # no git, or a checkout without that commit (e.g. a copy with no .git)
                res['baseline_ref'] = f'not run: commit {args.host_baseline} not readable here ({type(e).__name__})'
        for name, v in variants.items():
            print(f"host: {name}, batches {' '.join(map(str, args.host_batches))} ...", flush=True)
            t = time.perf_counter()
            rows = res['variants'][name] = host_subprocess(dict(base, batches=args.host_batches, compile=v['compile'],
                                                                compile_config=args.compile_config),
                                                           args.host_timeout, v.get('library') or root)
            for r in rows.values():
                if name == 'baseline' and r.get('status') == 'ok' and not r['library'].startswith(tmp):
                    r['status'] = f"failed: the baseline ran the library at {r['library']}, not the extracted copy"
                if r.get('status') == 'ok': r['library'] = 'baseline' if name == 'baseline' else 'this checkout'
            res.setdefault('wall_s', {})[name] = time.perf_counter() - t
    summarise_host(res, args.host_batches)
    return res


def summarise_host(res: dict, batches):
    "Ratios: ops at the largest batch over the smallest (1.0: independent of the batch), host ms against the baseline."
    lo, hi = str(min(batches)), str(max(batches))
    base = res['variants'].get('baseline', {})
    for name, rows in res['variants'].items():
        ok = {b: r for b, r in rows.items() if r.get('status') == 'ok'}
        if lo in ok and hi in ok and lo != hi:
            rows_growth = ok[hi]['leaf_aten_ops'] / ok[lo]['leaf_aten_ops']
            for r in ok.values(): r['ops_growth_with_batch'] = rows_growth
        for b, r in ok.items():
            if base.get(b, {}).get('status') == 'ok':
                r['host_ms_vs_baseline'] = r['host_ms'] / base[b]['host_ms']
                r['leaf_ops_vs_baseline'] = r['leaf_aten_ops'] / base[b]['leaf_aten_ops']


def print_host(res: dict, device_desc: str):
    m = res['model']
    print(f"\nhost overhead of the real training step (pretrain_learner, fit): {m['layers']}, width {m['hidden_size']}, "
          f"vocabulary {m['vocab_size']}, length {m['max_length']}; {device_desc}; per steady-state step "
          f"({res['steps']['timed']} timed, {res['steps']['profiled']} profiled after {res['steps']['warmup']} warmup)")
    if isinstance(res.get('baseline_ref'), str) and res['baseline_ref'].startswith('not run'): print(f"  baseline {res['baseline_ref']}")
    head = f"  {'variant':9s} {'batch':>5s} {'aten ops':>9s} {'leaf ops':>9s} {'syncs':>6s} {'nonzero':>7s} {'item':>5s} {'m_sel':>5s} {'host ms':>8s} {'vs base':>7s}"
    print(head)
    for name, rows in res['variants'].items():
        for b, r in rows.items():
            if r.get('status') != 'ok': print(f"  {name:9s} {b:>5s}  {r.get('status')}"); continue
            s = r['syncs_by_op']
            print(f"  {name:9s} {b:>5s} {r['aten_ops']:9.0f} {r['leaf_aten_ops']:9.0f} {r['syncs']:6.1f} {s['aten::nonzero']:7.1f} "
                  f"{s['aten::_local_scalar_dense']:5.1f} {s['aten::masked_select']:5.1f} {r['host_ms']:8.1f} "
                  + (f"{r['host_ms_vs_baseline']:6.2f}x" if 'host_ms_vs_baseline' in r else f"{'':>7s}"))
    for name, rows in res['variants'].items():
        r = next((r for r in rows.values() if r.get('status') == 'ok'), None)   # the sources, at the first batch measured
        if r and r['sync_sources']:
            print(f"  {name} syncs per step from: " + ', '.join(f'{k} {v:g}' for k, v in r['sync_sources'].items()))
        if r and r['syncs_inside_ops']:
            print(f"  {name}, not counted (read by an op's CPU kernel; its CUDA kernel reads on the device): "
                  + ', '.join(f'{k} {v:g}' for k, v in r['syncs_inside_ops'].items()))
    for name, rows in res['variants'].items():
        g = next((r['ops_growth_with_batch'] for r in rows.values() if 'ops_growth_with_batch' in r), None)
        if g is not None: print(f"  {name}: leaf ops at the largest batch / the smallest = {g:.3f} (1.000: independent of the batch)")


# ---------------------------------------------------------------------------------------------------------------------
# Section `learner`: the real Learner's steps/s and MFU at a preset's shape (scripts/gpu_check.sh's headline numbers)
# ---------------------------------------------------------------------------------------------------------------------
# spec-sheet bf16 dense tensor-core peaks (no sparsity), TFLOP/s; the first entry whose words all occur in the device's
# name (torch.cuda.get_device_name) wins, so the more specific names come first
BF16_SPEC_TFLOPS = (
    (('GH200',), 989), (('H200', 'NVL'), 835), (('H200',), 989), (('H100', 'PCIe'), 756), (('H100', 'NVL'), 835),
    (('H100',), 989), (('H800', 'PCIe'), 756), (('H800',), 989), (('B200',), 2250), (('A100',), 312), (('A800',), 312),
    (('A30',), 165), (('L40S',), 362), (('L40',), 181), (('L4',), 121), (('A10G',), None), (('A10',), 125),
)


def bf16_spec_peak(device_name: str) -> float | None:
    "The spec bf16 dense peak of `device_name` in FLOP/s, or None when the table does not know the device."
    words = device_name.replace('-', ' ').split()
    for keys, tflops in BF16_SPEC_TFLOPS:
        if all(k in words for k in keys): return tflops and tflops * 1e12
    return None


class FlopProbe(Callback):
    "Counts, with torch's flop counter, the FLOPs (matrix products, attention) of training step `at`, whole."
    order = -100   # before every other callback's before_batch
    def __init__(self, at=1): self.at, self.n, self.mode, self.flops = at, 0, None, None
    def before_batch(self):
        if self.training and self.n + 1 == self.at:
            self.mode = FlopCounterMode(display=False); self.mode.__enter__()
    def after_batch(self):
        if not self.training: return
        self.n += 1
        if self.mode is not None: self.mode.__exit__(None, None, None); self.flops, self.mode = self.mode.get_total_flops(), None


def learner_cfg(args, size, compile_: bool, steps: int, tmp):
    overrides = dict(batch_size=args.batch_size, steps=steps, warmup_steps=1, checkpoint_fractions=(1.0,), log_every=steps,
                     seed=args.seed, compile=compile_, output_dir=tmp, precision=args.learner_precision)
    if args.learner_max_length: overrides['max_length'] = args.learner_max_length
    if compile_: overrides.update(args.compile_config)
    return pretrain_config('electra', size, **overrides)


def learner_flops(args, size, tokenizer) -> int:
    "FLOPs of one training step of the eager Learner (a compiled one hides its ops from the counter: the same math)."
    with tempfile.TemporaryDirectory() as tmp:
        cfg = learner_cfg(args, size, False, 2, tmp)
        learn = pretrain_learner(cfg, Dataset.from_list(synthetic_examples(tokenizer, 2 * cfg.batch_size, cfg.max_length, args.seed)),
                                 tokenizer, device=torch.device(args.device))
        probe = FlopProbe(at=2)
        learn.add_cb(probe)
        with learn.no_bar(), learn.no_logging(): fit_steps(learn)
    return probe.flops


def bench_learner_run(args, size, tokenizer, variant: str, flops: int, peak: float | None) -> dict:
    "Steps/s of `pretrain_learner` (eager or compiled), a window of --learner-steps after --learner-warmup steps."
    n = args.learner_warmup + args.learner_steps + 1
    with tempfile.TemporaryDirectory() as tmp:
        cfg = learner_cfg(args, size, variant == 'compiled', n, tmp)
        examples = synthetic_examples(tokenizer, cfg.batch_size * n, cfg.max_length, args.seed)
        learn = pretrain_learner(cfg, Dataset.from_list(examples), tokenizer, device=torch.device(args.device))
        probe = HostProbe(args.device, args.learner_warmup, args.learner_steps, 0)
        learn.add_cb(probe)
        t0 = time.perf_counter()
        with learn.no_bar(), learn.no_logging(): fit_steps(learn)
        fit_s = time.perf_counter() - t0
    sec = probe.window_s / args.learner_steps
    tokens = cfg.batch_size * sum(len(e['input_ids']) for e in examples) / len(examples)
    res = dict(variant=variant, precision=cfg.precision, compile=cfg.compile, sec_per_step=sec, steps_per_s=1 / sec,
               host_ms_min=1e3 * min(probe.times), tokens_per_s=tokens / sec, flops_per_step=flops,
               achieved_flops_per_s=flops / sec, mfu=flops / sec / peak if peak else None,
               hours_per_1M_steps=sec * 1e6 / 3600, fit_s=fit_s, untimed_s=fit_s - probe.window_s)   # warmup (compiling), last step
    if variant == 'compiled': res['compile_config'] = dict(args.compile_config)
    return res


def run_learner(args, tokenizer, name: str, out_partial) -> dict:
    "The `learner` section: each of --sizes, eager (and compiled with --compile), written to the JSON after each run."
    peak = bf16_spec_peak(name) if args.device.startswith('cuda') else None
    res = dict(device_name=name, bf16_spec_peak_flops=peak,
               peak_note='spec bf16 dense peak' if peak else ('not a GPU: no spec peak' if not args.device.startswith('cuda')
                                                                else f'unknown GPU {name!r}: no spec peak in the table, no MFU'),
               batch_size=args.batch_size, sizes={})
    for size in args.sizes:
        flops = learner_flops(args, size, tokenizer)
        r = res['sizes'][size] = dict(flops_per_step=flops, variants={})
        for variant in args.learner_variants or ['eager'] + (['compiled'] if args.compile else []):
            try: r['variants'][variant] = bench_learner_run(args, size, tokenizer, variant, flops, peak)
            except Exception as e: r['variants'][variant] = dict(variant=variant, status=f'failed: {type(e).__name__}: {e}'[:500])
            x = r['variants'][variant]
            r['max_length'] = learner_cfg(args, size, False, 1, '.').max_length
            print(learner_line(size, args.batch_size, r['max_length'], x, res['peak_note']), flush=True)
            out_partial(res)
    return res


def learner_line(size, batch, length, x, peak_note) -> str:
    if 'sec_per_step' not in x: return f"learner {size} {x['variant']}: {x.get('status')}"
    mfu = f"MFU {100 * x['mfu']:.1f}% of the {peak_note}" if x['mfu'] is not None else f"MFU not computed ({peak_note})"
    return (f"learner {size} {x['variant']} ({x['precision']}): {x['steps_per_s']:.2f} steps/s at batch {batch} x {length}, "
            f"{x['tokens_per_s']:,.0f} tokens/s, {x['achieved_flops_per_s'] / 1e12:.2f} TFLOP/s, {mfu}; "
            f"1M steps: {x['hours_per_1M_steps']:.1f} h")


def write_json_atomic(obj, path):
    path = Path(path)
    tmp = path.with_name(path.name + '.tmp')
    tmp.write_text(json.dumps(obj, indent=2))
    os.replace(tmp, path)


SECTIONS = ('pretrain', 'finetune', 'squad', 'data', 'host', 'learner')


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--sections', nargs='+', default=list(SECTIONS), choices=SECTIONS, help='what to measure')
    p.add_argument('--sizes', nargs='+', default=['small', 'tiny'], help='ELECTRA presets to measure (pretrain)')
    p.add_argument('--batch-size', type=int, default=None, help='default: 128 on a GPU, 32 on a CPU')
    p.add_argument('--steps', type=int, default=5, help='timed steps per variant')
    p.add_argument('--compile', action='store_true',
                   help='also time ours-bf16 under torch.compile (as --compile trains), after compiling it once (minutes on a CPU)')
    p.add_argument('--learner', action=argparse.BooleanOptionalAction, default=True,
                   help='also time ours-bf16 inside the fastai training loop (pretrain_learner), after the three variants')
    p.add_argument('--breakdown', nargs='*', default=None, choices=list(VARIANTS),
                   help="variants whose step is profiled after timing, to show what its time goes to (default: the headline "
                        "variant, ours-bf16 or ours-fp32; none: no profile)")
    p.add_argument('--bf16', action=argparse.BooleanOptionalAction, default=None,
                   help='time the ours-bf16 variant and make it the headline (learner loop, --compile, breakdown); default: '
                        'where the device multiplies bf16 natively (a GPU; a CPU with AVX512-BF16 or AMX), since elsewhere '
                        'bf16 is emulated, tens of times slower than fp32')
    p.add_argument('--finetune-steps', type=int, default=8, help='timed fine-tuning batches')
    p.add_argument('--finetune-repeats', type=int, default=2, help='timed steps per variant on each fine-tuning batch')
    p.add_argument('--finetune-lengths', default='sst2-like', choices=['sst2-like', 'practice'],
                   help="fine-tuning sentences: SST-2-like word counts, or the practice suite's SST-2 sentences as they are")
    p.add_argument('--squad-steps', type=int, default=4, help='timed SQuAD fine-tuning batches (squad)')
    p.add_argument('--squad-repeats', type=int, default=2, help='timed steps per variant on each SQuAD batch (squad)')
    p.add_argument('--squad-size', default='small', choices=['tiny', 'small', 'base'], help='ELECTRA preset of the squad section')
    p.add_argument('--squad-dir', default='', help='SQuAD 1.1 folder (official layout) for the squad section; default: the practice set')
    p.add_argument('--data-builder', default='electra', choices=['electra', 'deberta'], help='example builder (data)')
    p.add_argument('--data-num-proc', type=int, default=1, help='processes building the dataset (data)')
    p.add_argument('--cache-dir', default='data_cache', help='where the default corpus and the GLUE practice suite are')
    p.add_argument('--warmup', type=int, default=0,
                   help='untimed training steps per variant before timing (the FLOP-counting pass already warms up)')
    p.add_argument('--sharing', default='gdes', choices=['gdes', 'es', 'nes'])
    p.add_argument('--attention', default='auto', choices=ATTENTIONS,
                   help="our variants' attention and dropout implementation, as pretraining's --attention (the baseline: SDPA)")
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--threads', type=int, default=None,
                   help="torch CPU threads (default: torch's); on a loaded machine 1 avoids oversubscription")
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--out', default='bench_results.json')
    h = p.add_argument_group('host', 'the host section: the real Learner step at ELECTRA-small depth, tiny width and vocabulary')
    h.add_argument('--host-batches', type=int, nargs='+', default=[16, 64], help='batch sizes (ops per step must not grow with them)')
    h.add_argument('--host-steps', type=int, default=5, help='timed steady-state steps per run')
    h.add_argument('--host-profiled', type=int, default=2, help='profiled steps per run, after the timed ones')
    h.add_argument('--host-warmup', type=int, default=3, help='untimed steps first (with --compile: where it compiles)')
    h.add_argument('--host-vocab', type=int, default=64, help='vocabulary of the word-level tokenizer')
    h.add_argument('--host-max-length', type=int, default=32,
                   help='tokens per example, every example this long (short: the batch adds little arithmetic on a CPU)')
    h.add_argument('--host-precision', default=None, choices=PRECISIONS, help="the Learner's precision (default: the preset's)")
    h.add_argument('--host-baseline', default=HOST_BASELINE,
                   help="git commit whose library is the naive baseline, run from an extracted copy ('none': no baseline)")
    h.add_argument('--host-timeout', type=float, default=300,
                   help='seconds each variant may take for all its batches (a compiled one compiles first)')
    g = p.add_argument_group('learner', "the learner section: the real Learner's steps/s and MFU (against the GPU's spec bf16 peak) at --sizes")
    g.add_argument('--learner-steps', type=int, default=20, help='timed steps (one window, synchronised at both ends)')
    g.add_argument('--learner-warmup', type=int, default=5, help='untimed steps first (with --compile: where it compiles)')
    g.add_argument('--learner-precision', default='bf16', choices=PRECISIONS)
    g.add_argument('--learner-variants', nargs='+', choices=['eager', 'compiled'], default=None,
                   help='which Learners to time (default: eager, and compiled with --compile)')
    g.add_argument('--learner-max-length', type=int, default=None, help="tokens per example (default: the preset's)")
    p.add_argument('--compile-config', nargs='*', default=[], metavar='FIELD=VALUE',
                   help='PretrainConfig fields for the compiled runs of the learner section (values as JSON, else strings)')
    p.add_argument('--host-worker', nargs=2, metavar=('SPEC', 'OUT'), help=argparse.SUPPRESS)   # one run, in a child process
    args = p.parse_args(argv)
    def field(kv):
        k, _, v = kv.partition('=')
        try: return k, json.loads(v)
        except ValueError: return k, v
    args.compile_config = dict(field(kv) for kv in args.compile_config)
    if min(args.host_warmup, args.learner_warmup, args.host_steps, args.learner_steps) < 1:
        p.error('--host-warmup, --host-steps, --learner-warmup and --learner-steps must be at least 1')
    if args.host_worker:
        spec, out = args.host_worker
        host_worker(json.loads(Path(spec).read_text()), Path(out))
        return 0
    if min(args.steps, args.finetune_steps, args.finetune_repeats, args.squad_steps, args.squad_repeats) < 1:
        p.error('--steps, --finetune-steps, --finetune-repeats, --squad-steps and --squad-repeats must be at least 1')
    if args.bf16 is None: args.bf16 = torch.cuda.is_bf16_supported() if args.device.startswith('cuda') else cpu_has_fast_bf16()
    if args.breakdown is None: args.breakdown = [headline(args)]
    gpu = args.device.startswith('cuda')
    if args.threads: torch.set_num_threads(args.threads)
    load, cores = os.getloadavg()[0], os.cpu_count()
    if not gpu and load > 0.5 * cores:
        print(f'warning: load average {load:.1f} on {cores} cores: other processes compete for the CPU and several torch '
              'threads then wait on each other; the numbers will be low and uneven (try --threads 1).')
    args.batch_size = args.batch_size or (128 if gpu else 32)
    tokenizer = load_tokenizer(pretrain_config('electra', 'small', cache_dir=args.cache_dir))
    name = torch.cuda.get_device_name() if gpu else platform.processor() or platform.machine()
    results = dict(device=args.device, device_name=name, threads=torch.get_num_threads(), torch=torch.__version__,
                   sections=args.sections)
    print(f"device {args.device} ({name}, {torch.get_num_threads()} threads)")
    checks = {}
    if 'pretrain' in args.sections:
        if RTD_INTERNALS_ERROR is not None:
            raise SystemExit(f'the pretrain section needs internals the library no longer has ({RTD_INTERNALS_ERROR}); '
                             'the host section needs only its public API (--sections host)')
        results.update(run_pretrain(args, tokenizer))
        checks['pretrain losses'] = all(r['fp32_loss_rel_diff'] < 1e-5 and (r['bf16_loss_rel_diff'] or 0) < 1e-2
                                        and r.get('compiled_loss_rel_diff', 0) < 1e-2 for r in results['sizes'].values())
    if 'finetune' in args.sections:
        r = results['finetune'] = bench_finetune(args, tokenizer)
        t = r['example_tokens']
        print(f"\nfine-tuning ELECTRA-small classifier, {r['sentences']} sentences, batch {r['batch_size']}: tokens per example mean "
              f"{t['mean']:.1f}, median {t['median']}, p95 {t['p95']}, max {t['max']}; dynamic padded lengths {r['padded_length']['dynamic']}")
        print(f"  eval loss dynamic {r['losses_eval']['dynamic']:.6f} vs fixed-128 {r['losses_eval']['fixed-128']:.6f} "
              f"(rel. diff {r['loss_rel_diff']:.1e})")
        for v, x in r['variants'].items():
            print(f"  {v:10s} {x['examples_per_s']:8.1f} examples/s (each batch's fastest step; all steps {x['examples_per_s_all_steps']:.1f})")
        print(f"  dynamic padding vs padding to 128: x{r['speedup_dynamic_vs_fixed']:.2f} (all steps x{r['speedup_dynamic_vs_fixed_all_steps']:.2f}, "
              f"median over batches x{r['speedup_per_batch_median']:.2f})")
        checks['finetune losses'] = r['loss_rel_diff'] < 1e-5
    if 'squad' in args.sections:
        r = results['squad'] = bench_squad(args, tokenizer)
        t = r['window_tokens']
        print(f"\nSQuAD fine-tuning, {r['model']}, batch {r['batch_size']} windows of {r['data']}: tokens per window "
              f"mean {t['mean']:.1f}, median {t['median']}, p95 {t['p95']}, max {t['max']}")
        print(f"  eval loss dynamic {r['losses_eval']['dynamic']:.6f} vs pad-512 {r['losses_eval']['pad-512']:.6f} (rel. diff {r['loss_rel_diff']:.1e})")
        for v, x in r['variants'].items():
            print(f"  {v:15s} {x['examples_per_s']:8.2f} windows/s (each batch's fastest step), padded lengths {r['padded_length'][v]}")
        print(f"  padded to the batch's longest vs every window to 512: x{r['speedup_dynamic_vs_pad512']:.2f}; "
              f"windows batched by length too: x{r['speedup_length_grouped_vs_pad512']:.2f}")
        checks['squad losses'] = r['loss_rel_diff'] < 1e-5
    if 'data' in args.sections:
        r = results['data'] = bench_data_pipeline(args)
        print(f"\ndata pipeline ({r['builder']} builder, {r['num_proc']} process(es), default corpus {r['corpus_mb']} MB, fresh cache): "
              f"{r['mb_per_s']:.2f} MB/s ({r['mb_per_cpu_s']:.2f} MB per CPU second), {r['tokens_per_s']} tokens/s, "
              f"{r['examples']} examples in {r['seconds']:.1f} s")
    if 'host' in args.sections:
        r = results['host'] = run_host(args)
        print_host(r, f"{args.device} ({name}), {torch.get_num_threads()} threads")
        checks['host runs'] = all(x.get('status') == 'ok' for v, rows in r['variants'].items() for x in rows.values()
                                  if v != 'compiled')   # a compile over --host-timeout is reported, not a failure
    if 'learner' in args.sections:
        results['learner'] = run_learner(args, tokenizer, name, lambda r: write_json_atomic({**results, 'learner': r}, args.out))
        checks['learner runs'] = all('sec_per_step' in x for r in results['learner']['sizes'].values() for x in r['variants'].values())
    write_json_atomic(results, args.out)
    ok = all(checks.values())
    print(f"\nwrote {args.out}; " + (', '.join(f"{k} {'passed' if v else 'FAILED'}" for k, v in checks.items()) or 'no checks'))
    return 0 if ok else 1


def run_pretrain(args, tokenizer) -> dict:
    "The pretraining section: every size of `args.sizes`, with the matmul peaks measured before and after."
    gpu = args.device.startswith('cuda')
    n = 8192 if gpu else 2048
    # a CPU without native bf16 (no AVX512-BF16 / AMX) multiplies bf16 ~50x slower than fp32: a 2048 cube would take
    # minutes there, and 512 already shows its (low) rate
    n_bf16 = n if gpu or cpu_has_fast_bf16() else 512
    measure_peaks = lambda: {'fp32': matmul_peak(torch.float32, args.device, n), 'bf16': matmul_peak(torch.bfloat16, args.device, n_bf16)}
    before = measure_peaks()
    print(f"matmul peak fp32 {before['fp32'] / 1e9:.0f} GFLOP/s, bf16 {before['bf16'] / 1e9:.0f} GFLOP/s")
    if not args.bf16:
        print('ours-bf16 not timed: this device has no native bf16 matmul (see the peaks); ours-fp32 is the headline '
              'variant (--bf16 times bf16 anyway)')
    results = dict(steps=args.steps, warmup=args.warmup, sizes={})
    for size in args.sizes:
        r = results['sizes'][size] = bench_size(size, args, tokenizer)
        print(f"ELECTRA-{size}, batch {r['batch_size']}, mean length {r['mean_length']:.1f} of {r['max_length']}, "
              f"eval losses {', '.join(f'{k} {v:.6f}' for k, v in r['losses_eval'].items())}")
        print(f"  fp32 loss rel. diff ours vs baseline {r['fp32_loss_rel_diff']:.1e}"
              + (f"; bf16 vs fp32 {r['bf16_loss_rel_diff']:.1e}" if r['bf16_loss_rel_diff'] is not None else ''))
        if 'compile_seconds' in r:
            print(f"  torch.compile: {r['compile_seconds']:.0f} s to compile; loss rel. diff compiled vs eager {r['compiled_loss_rel_diff']:.1e}")
    # the peak is measured before and after (best of both), so that other load on the machine at one moment counts less
    after = measure_peaks()
    peaks = {k: max(before[k], after[k]) for k in before}
    results.update(matmul_peak_flops=peaks, matmul_peak_before=before, matmul_peak_after=after)
    print(f"\nmatmul peak (best of before/after): fp32 {peaks['fp32'] / 1e9:.0f} GFLOP/s, bf16 {peaks['bf16'] / 1e9:.0f} GFLOP/s")
    if any(abs(before[k] - after[k]) > 0.2 * peaks[k] for k in peaks):
        print('  the two peak measurements differ by more than 20%: the machine is busy, fractions of peak are rough')
    for size, r in results['sizes'].items():
        add_peak_fractions(r, peaks)
        print(f"ELECTRA-{size}:")
        for name, v in r['variants'].items():
            print(f"  {name:18s} {v['attention']:16s} {v['sec_per_step']:7.3f} s/step {v['tokens_per_s']:9.0f} tok/s  x{v['speedup_vs_baseline']:.2f}  "
                  f"{v['flops_per_step'] / 1e9:6.1f} GFLOP/step {v['achieved_flops_per_s'] / 1e9:6.1f} GFLOP/s = "
                  f"{100 * v['fraction_of_fp32_peak']:.0f}% of fp32 / {100 * v['fraction_of_bf16_peak']:.0f}% of bf16 peak")
        if 'learner' in r:
            x = r['learner']
            print(f"  {headline(args)} in the fastai training loop (masking, callbacks, data loading included): {x['sec_per_step']:.3f} s/step "
                  f"{x['tokens_per_s']:9.0f} tok/s  x{x['speedup_vs_baseline']:.2f}")
        best = r.get('learner', r['variants'][headline(args)])
        print(f"  at {best['steps_per_s']:.2f} steps/s (batch {r['batch_size']}), 1M steps take {best['hours_per_1M_steps']:.0f} h")
        for name, b in r['breakdown'].items():
            print(f"  {name}: where a step's time goes (one profiled step: forward+backward {b['forward_backward_s']:.3f} s, "
                  f"optimizer {b['optimizer_s']:.3f} s); shares of the forward+backward ops' own time:")
            for g, sec in sorted(b['groups_s'].items(), key=lambda kv: -kv[1]):
                print(f"    {100 * sec / b['op_time_s']:5.1f}%  {g}")
            print('    top ops: ' + ', '.join(f"{k.removeprefix('aten::')} {100 * v / b['op_time_s']:.0f}%" for k, v in list(b['top_ops_s'].items())[:6]))
    return results

if __name__ == '__main__':
    sys.exit(main())
