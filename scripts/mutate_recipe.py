"""Mutation testing of the published recipe: each mutant changes one recipe constant or formula of the library (config,
rtd, optim, data, glue_model, glue_metrics, glue_finetune, model) in a scratch copy of the package, and the recipe tests must fail on it.

    python scripts/mutate_recipe.py                # every mutant, one at a time; exits 1 if any survives
    python scripts/mutate_recipe.py --jobs 2       # two at a time
    python scripts/mutate_recipe.py --only gumbel  # the mutants whose description contains 'gumbel'

The repository's files are never modified: each mutant is applied to a copy of `electra_gdes/` in a temporary
directory that comes first on PYTHONPATH (the editable install's finder comes after it), and pytest runs from the
repository root with `pytest -x -q`. A snippet that is no longer in the source (the code moved on) is reported as STALE
and counts as a failure of this script, so the list cannot silently rot."""
from __future__ import annotations
import argparse, os, re, shutil, subprocess, sys, tempfile, time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT/'electra_gdes'
TESTS = ['tests/test_recipe.py']

# (module file, exact source snippet, mutated snippet, description[, tests]) -- each snippet occurs once in its file
MUTANTS = [
    # config: pretraining presets
    ('config.py', 'batch_size=256, steps=766_000, lr=2e-4', 'batch_size=256, steps=700_000, lr=2e-4', 'ELECTRA-base steps 766k -> 700k'),
    ('config.py', 'batch_size=256, steps=766_000, lr=2e-4', 'batch_size=256, steps=766_000, lr=1e-4', 'ELECTRA-base lr 2e-4 -> 1e-4'),
    ('config.py', 'batch_size=128, steps=1_000_000, lr=5e-4', 'batch_size=128, steps=1_000_000, lr=1e-3', 'ELECTRA-small lr 5e-4 -> 1e-3'),
    ('config.py', 'max_length=128, batch_size=128, steps=1_000_000', 'max_length=512, batch_size=128, steps=1_000_000', 'ELECTRA-small length 128 -> 512'),
    ('config.py', 'batch_size=2048, steps=400_000', 'batch_size=1024, steps=400_000', 'ELECTRA-large batch 2048 -> 1024'),
    ('config.py', 'batch_size=2048, steps=400_000', 'batch_size=2048, steps=1_000_000', 'ELECTRA-large steps 400k -> 1M'),
    ('config.py', 'lr=2e-4, warmup_steps=10_000,\n                               mask_prob=0.25', 'lr=2e-4, warmup_steps=10_000,\n                               mask_prob=0.15', 'ELECTRA-large mask rate 0.25 -> 0.15'),
    ('config.py', 'steps=1_000_000, lr=5e-4, warmup_steps=10_000', 'steps=1_000_000, lr=5e-4, warmup_steps=1_000', 'ELECTRA-small warmup 10k -> 1k'),
    ('config.py', 'gen_width_ratio=1/3', 'gen_width_ratio=0.25', 'ELECTRA-base generator ratio 1/3 -> 1/4'),
    ('config.py', 'num_heads=12, intermediate_size=3072, embedding_size=768,\n                               gen_width_ratio=1/3', 'num_heads=12, intermediate_size=3072, embedding_size=128,\n                               gen_width_ratio=1/3', 'ELECTRA-base embedding size 768 -> 128'),
    ('config.py', "sampling='gumbel', disc_weight=50.0", "sampling='gumbel', disc_weight=10.0", 'ELECTRA lambda (disc_weight) 50 -> 10'),
    ('config.py', "sampling='multinomial', disc_weight=10.0", "sampling='multinomial', disc_weight=50.0", 'DeBERTa lambda (disc_weight) 10 -> 50'),
    ('config.py', "_ELECTRA = dict(backbone='electra', mask_style='electra', sampling='gumbel'", "_ELECTRA = dict(backbone='electra', mask_style='electra', sampling='multinomial'", 'ELECTRA sampler gumbel -> multinomial'),
    ('config.py', "disc_weight=50.0, schedule='electra'", "disc_weight=50.0, schedule='deberta'", 'ELECTRA schedule -> deberta'),
    ('config.py', "example_builder='electra', tokenizer='bert-uncased'", "example_builder='deberta', tokenizer='bert-uncased'", 'ELECTRA example builder -> deberta'),
    ('config.py', "mask_unk=False, gen_width_ratio=1.0, gen_depth_ratio=0.5", "mask_unk=False, gen_width_ratio=1.0, gen_depth_ratio=1.0", 'DeBERTa generator depth 1/2 -> 1'),
    ('config.py', "mask_unk=False, gen_width_ratio=1.0, gen_depth_ratio=0.5", "mask_unk=False, gen_width_ratio=0.25, gen_depth_ratio=0.5", 'DeBERTa generator width 1 -> 1/4'),
    ('config.py', "tokenizer='train', vocab_size=128100", "tokenizer='train', vocab_size=30522", 'DeBERTa vocabulary 128100 -> 30522'),
    ('config.py', "_DEBERTA = dict(backbone='deberta', mask_style='deberta'", "_DEBERTA = dict(backbone='deberta', mask_style='electra'", 'DeBERTa mask style -> electra'),
    ('config.py', 'max_length=512, batch_size=64, steps=1_000_000, lr=3e-4', 'max_length=512, batch_size=32, steps=1_000_000, lr=3e-4', 'DeBERTa-xsmall batch 64 -> 32'),
    ('config.py', 'max_length=512, batch_size=64, steps=1_000_000, lr=3e-4', 'max_length=512, batch_size=64, steps=1_000_000, lr=5e-4', 'DeBERTa-xsmall lr 3e-4 -> 5e-4'),
    ('config.py', "('deberta', 'base'):  dict(_DEBERTA, hidden_size=768, num_layers=12", "('deberta', 'base'):  dict(_DEBERTA, hidden_size=768, num_layers=6", 'DeBERTa-base layers 12 -> 6'),
    ('config.py', 'max_length=512, batch_size=256, steps=1_000_000, lr=1e-4, warmup_steps=10_000, mask_prob=0.15),\n}', 'max_length=512, batch_size=256, steps=1_000_000, lr=2e-4, warmup_steps=10_000, mask_prob=0.15),\n}', 'DeBERTa-large lr 1e-4 -> 2e-4'),
    ('config.py', 'position_buckets: int = 256', 'position_buckets: int = 512', 'DeBERTa position buckets 256 -> 512'),
    ('config.py', 'mask_unk: bool = True', 'mask_unk: bool = False', 'ELECTRA mask_unk True -> False'),
    ('config.py', 'temperature: float = 1.0', 'temperature: float = 2.0', 'sampling temperature 1 -> 2'),
    ('config.py', 'weight_decay: float = 0.01', 'weight_decay: float = 0.0', 'pretraining weight decay 0.01 -> 0'),
    ('config.py', 'adam_beta1: float = 0.9', 'adam_beta1: float = 0.8', 'Adam beta1 0.9 -> 0.8'),
    ('config.py', 'adam_beta2: float = 0.999', 'adam_beta2: float = 0.98', 'Adam beta2 0.999 -> 0.98'),
    ('config.py', 'adam_eps: float = 1e-6', 'adam_eps: float = 1e-8', 'Adam eps 1e-6 -> 1e-8'),
    ('config.py', 'clip_norm: float = 1.0', 'clip_norm: float = 5.0', 'pretraining clip norm 1 -> 5'),
    ('config.py', 'CONTINUED_PRETRAINING = dict(lr=5e-5, steps=100_000,', 'CONTINUED_PRETRAINING = dict(lr=5e-5, steps=1_000_000,', 'continued training 100k -> 1M steps'),
    ('config.py', 'steps=100_000, batch_size=256)', 'steps=100_000, batch_size=64)', 'continued training batch 256 -> 64'),
    ('config.py', "schedule='deberta', emd=True, decoupled_training=True,", "schedule='deberta', emd=False, decoupled_training=True,", 'DeBERTa generator without the Enhanced Mask Decoder'),
    ('config.py', "schedule='deberta', emd=True, decoupled_training=True,", "schedule='deberta', emd=True, decoupled_training=False,", 'DeBERTa trained joint, not decoupled'),
    # config: GLUE
    ('config.py', "                         'small': dict(lr=3e-4, layer_decay=0.8)", "                         'small': dict(lr=1e-4, layer_decay=0.8)", 'GLUE small lr 3e-4 -> 1e-4'),
    ('config.py', "(lr=3e-4, layer_decay=0.8), 'base': dict(lr=1e-4, layer_decay=0.8),\n                         'large'", "(lr=3e-4, layer_decay=0.8), 'base': dict(lr=3e-4, layer_decay=0.8),\n                         'large'", 'GLUE base lr 1e-4 -> 3e-4'),
    ('config.py', "                         'large': dict(lr=5e-5, layer_decay=0.9)", "                         'large': dict(lr=5e-5, layer_decay=0.8)", 'GLUE large layer decay 0.9 -> 0.8'),
    ('config.py', "                         'large': dict(lr=5e-5, layer_decay=0.9)", "                         'large': dict(lr=1e-4, layer_decay=0.9)", 'GLUE large lr 5e-5 -> 1e-4'),
    ('config.py', "TASK_EPOCHS = {'rte': 10, 'stsb': 10}", "TASK_EPOCHS = {'rte': 10, 'stsb': 3}", 'GLUE STS-B epochs 10 -> 3'),
    ('config.py', "TASK_EPOCHS = {'rte': 10, 'stsb': 10}", "TASK_EPOCHS = {'rte': 10, 'stsb': 10, 'mrpc': 10}", 'GLUE MRPC epochs 3 -> 10'),
    ('config.py', 'TASK_EPOCHS.get(task, 3)', 'TASK_EPOCHS.get(task, 2)', 'GLUE default epochs 3 -> 2'),
    ('config.py', '(pairs truncated BERT-style)\n    weight_decay: float = 0.0 ', '(pairs truncated BERT-style)\n    weight_decay: float = 0.01', 'GLUE weight decay 0 -> 0.01'),
    ('config.py', 'warmup_fraction: float = 0.1        # share of the steps that warm up linearly\n    dropout', 'warmup_fraction: float = 0.0        # share of the steps that warm up linearly\n    dropout', 'GLUE warmup 0.1 -> 0'),
    ('config.py', 'dropout: float = 0.1', 'dropout: float = 0.2', 'GLUE head dropout 0.1 -> 0.2'),
    ('config.py', 'batch_size: int = 32                # the global batch, as in PretrainConfig', 'batch_size: int = 16                # the global batch, as in PretrainConfig', 'GLUE batch 32 -> 16'),
    # rtd
    ('rtd.py', "'electra': (0.85, 0.0)", "'electra': (0.8, 0.05)", 'ELECTRA split (0.85, 0) -> (0.8, 0.05)'),
    ('rtd.py', "'bert': (0.8, 0.1)", "'bert': (0.7, 0.2)", 'BERT split (0.8, 0.1) -> (0.7, 0.2)'),
    ('rtd.py', "'deberta': (1.0, 0.0)", "'deberta': (0.9, 0.0)", 'DeBERTa split (1, 0) -> (0.9, 0)'),
    ('rtd.py', 'return int((mask_prob + 0.005) * max_length)', 'return int(mask_prob * max_length)', 'mask cap without +0.005'),
    ('rtd.py', 'size = int(1 / mask_prob)', 'size = int(1 / mask_prob) + 1', 'DeBERTa window 6 -> 7'),
    ('rtd.py', 'u.float().add_(1e-9).log_().neg_()', 'u.float().log_().neg_()', 'gumbel inner 1e-9 removed'),
    ('rtd.py', '.neg_().add_(1e-9).log_().neg_()', '.neg_().log_().neg_()', 'gumbel outer 1e-9 removed'),
    ('rtd.py', 'logits = logits.float()   # bf16', 'logits = logits   # bf16', 'gumbel fp32 cast removed'),
    # optim
    ('optim.py', 'def __init__(self, params, lr, mom=0.9, sqr_mom=0.999, eps=1e-6, wd=0.01):', 'def __init__(self, params, lr, mom=0.9, sqr_mom=0.999, eps=1e-8, wd=0.01):', 'AdamNoBiasCorrection eps 1e-6 -> 1e-8'),
    ('optim.py', 'def adam_no_bias_correction(params, lr, mom=0.9, sqr_mom=0.999, eps=1e-6, wd=0.01)', 'def adam_no_bias_correction(params, lr, mom=0.9, sqr_mom=0.999, eps=1e-8, wd=0.01)', 'adam_no_bias_correction eps 1e-6 -> 1e-8 (fine-tuning)'),
    ('optim.py', 'def adam_no_bias_correction(params, lr, mom=0.9, sqr_mom=0.999, eps=1e-6, wd=0.01)', 'def adam_no_bias_correction(params, lr, mom=0.9, sqr_mom=0.99, eps=1e-6, wd=0.01)', 'adam_no_bias_correction beta2 0.999 -> 0.99'),
    ('optim.py', 'torch.tensor(2.0 ** 30, device=d)', 'torch.tensor(0.0, device=d)', 'bias correction on (both moments: the fused kernel from step 1)'),
    ('optim.py', 'lr=lr, beta1=mom, beta2=sqr_mom,', 'lr=lr, beta1=sqr_mom, beta2=mom,', 'Adam betas swapped'),
    ('optim.py', 'weight_decay=wd if decay else 0.', 'weight_decay=wd / lr if decay else 0.', 'weight decay not scaled by lr'),
    ('optim.py', 'weight_decay=wd if decay else 0., eps=eps,', 'weight_decay=wd if decay else 0., eps=eps * 100,', 'Adam eps in the step 1e-6 -> 1e-4'),
    ('optim.py', "NO_DECAY_NAMES = ('LayerNorm', 'layer_norm', 'bias')", "NO_DECAY_NAMES = ('LayerNorm', 'layer_norm')", 'biases decayed'),
    ('optim.py', 'wd=[cfg.weight_decay, 0.]', 'wd=[cfg.weight_decay, cfg.weight_decay]', 'LayerNorm/bias group decayed'),
    ('optim.py', 'return max(0., 1 - step/total) * (min(1., step/warmup) if warmup else 1.)', 'return step/warmup if step < warmup else max(0., 1 - step/total)', 'ELECTRA schedule: warmup then decay'),
    ('optim.py', 'return step/warmup if step < warmup else max(0., 1 - step/total)', 'return step/warmup if step < warmup else max(0., 1 - (step - warmup)/(total - warmup))', 'DeBERTa schedule: decay after warmup'),
    # data
    ('data.py', 'SINGLE_SEGMENT_PROB = 0.1', 'SINGLE_SEGMENT_PROB = 0.2', 'single-segment probability 0.1 -> 0.2'),
    ('data.py', 'RANDOM_LENGTH_PROB = 0.05', 'RANDOM_LENGTH_PROB = 0.1', 'random-length probability 0.05 -> 0.1'),
    ('data.py', 'MIN_RANDOM_LENGTH = 5', 'MIN_RANDOM_LENGTH = 2', 'minimum random length 5 -> 2'),
    ('data.py', 'SEGMENT_A_OVERFLOW_PROB = 0.5', 'SEGMENT_A_OVERFLOW_PROB = 0.3', 'segment-A overflow probability 0.5 -> 0.3'),
    ('data.py', '(target_length - 3) // 2', '(target_length - 2) // 2', 'segment-A target (L-3)//2 -> (L-2)//2'),
    ('data.py', 'n = max_length - 2\n', 'n = max_length - 3\n', 'DeBERTa lines 510 -> 509 tokens'),
    # glue_finetune
    ('glue_finetune.py', "DOUBLED_TASKS = ('mrpc', 'stsb')", 'DOUBLED_TASKS = ()', 'DOUBLED_TASKS -> ()'),
    ('glue_finetune.py', "DOUBLED_TASKS = ('mrpc', 'stsb')", "DOUBLED_TASKS = ('mrpc', 'stsb', 'rte')", 'DOUBLED_TASKS + rte'),
    ('glue_metrics.py', 'STSB_RANGE = (0.0, 5.0)', 'STSB_RANGE = (0.0, 6.0)', 'STS-B clip [0, 5] -> [0, 6]'),
    ('glue_metrics.py', 'return clip_stsb(outputs) if is_regression', 'return outputs if is_regression', 'STS-B predictions not clipped'),
    ('glue_finetune.py', 'CLIP_NORM = 1.0', 'CLIP_NORM = 5.0', 'fine-tuning clip norm 1 -> 5'),
    ('glue_model.py', 'return n_layers + (2 if official_head_depth else 1)', 'return n_layers + (2 if official_head_depth else 2)', 'head depth L+1 -> L+2'),
    ('glue_model.py', 'lr * decay ** (top - d)', 'lr * decay ** (top - d - 1)', 'layer-wise decay exponent off by one'),
    ('glue_finetune.py', 'round(cfg.warmup_fraction * total)', 'round(cfg.warmup_fraction * len(train_dl))', 'warmup 10% of one epoch, not of all'),
    ('glue_finetune.py', 'round(cfg.warmup_fraction * total)', '0', 'fine-tuning warmup dropped'),
    ('glue_finetune.py', 'electra_lr(self.train_iter, self.total, self.warmup)', '(1 - self.train_iter / self.total)', 'fine-tuning schedule without warmup'),
    ('glue_finetune.py', 'loss_func=MSELossFlat() if task.is_regression', 'loss_func=nn.L1Loss() if task.is_regression', 'STS-B loss MSE -> L1'),
    ('glue_finetune.py', 'opt_func=partial(adam_no_bias_correction, wd=cfg.weight_decay)', 'opt_func=adam_no_bias_correction', "fine-tuning weight decay: the optimiser's 0.01"),
    ('glue_finetune.py', 'GradientClip(CLIP_NORM), ', '', 'fine-tuning without clipping'),
    # model
    ('model.py', '_scaled(cfg.num_layers, cfg.gen_depth_ratio)', '_scaled(cfg.num_layers, w)', 'generator depth scaled by the width ratio'),
    ('model.py', '_scaled(cfg.intermediate_size, w)', 'cfg.intermediate_size', 'generator FFN not scaled'),
    ('model.py', "pos_att_type='p2c|c2p'", "pos_att_type='c2p'", 'DeBERTa attention c2p only'),
    ('model.py', 'position_biased_input=False', 'position_biased_input=True', 'DeBERTa absolute position bias in the input'),
    ('rtd.py', 'return torch.multinomial(probs.reshape(-1, probs.shape[-1]), 1, generator=rng)', 'return probs.reshape(-1, probs.shape[-1]).argmax(-1, keepdim=True)', 'DeBERTa sampling argmax, not multinomial'),
    ('rtd.py', 'probs = torch.softmax(logits.float() / temperature, -1)', 'probs = torch.softmax(logits.float(), -1)', 'DeBERTa multinomial ignores the temperature'),
    # model / train: the Enhanced Mask Decoder and decoupled training, against their transcriptions of the official code
    ('model.py', 'EMD_PASSES = 2', 'EMD_PASSES = 1', 'EMD applies the last layer once',
     ['tests/test_deberta_official.py::test_emd_forward_is_the_official_one_on_the_same_weights_and_inputs']),
    ('model.py', 'h = hidden_states[-2]  ', 'h = hidden_states[-1]  ', 'EMD keys/values from the last layer',
     ['tests/test_deberta_official.py::test_emd_forward_is_the_official_one_on_the_same_weights_and_inputs']),
    ('model.py', 'query = table.weight[:h.shape[1]] + h ', 'query = h ', 'EMD without the absolute positions z',
     ['tests/test_deberta_official.py::test_emd_forward_is_the_official_one_on_the_same_weights_and_inputs']),
    ('train.py', 'd = cfg.lr if cfg.disc_lr is None else cfg.disc_lr', 'd = cfg.lr', 'decoupled: --disc_lr ignored',
     ['tests/test_deberta_official.py::test_one_decoupled_step_is_two_separately_stepped_optimizers']),
    ('train.py', "for p in unwrap_rtd_model(self.model).generator.parameters(): p.grad = None", 'pass',
     "decoupled: the discriminator steps the ES table with its gradient",
     ['tests/test_deberta_official.py::test_one_decoupled_step_is_two_separately_stepped_optimizers']),
    ('train.py', "    self.step_and_zero_grad()         # 2. its step", "    self.loss_grad = 0 * mlm   # 2. its step",
     'decoupled: the generator is stepped together with the discriminator (one clip over both)',
     ['tests/test_deberta_official.py::test_one_decoupled_step_is_two_separately_stepped_optimizers']),
    # what the training loop actually samples with (RTDModel.sample at the counter-based uniforms)
    ('rtd.py', "SAMPLER_FUNCS = {'gumbel': gumbel_sample,", "SAMPLER_FUNCS = {'gumbel': multinomial_sample,",
     'training samples gumbel by inverse CDF', ['tests/test_train.py::test_training_gumbel_noise_comes_from_rtd']),
    ('rtd.py', 'return gumbel.add_(logits if temperature == 1.0 else logits / temperature).argmax(-1)',
     'return gumbel.add_(logits).argmax(-1)', 'training Gumbel-max ignores the temperature',
     ['tests/test_train.py::test_training_samples_by_gumbel_max_at_the_known_uniforms']),
    ('rtd.py', 'x = x * 0x7FEB352D', 'x = x * 0x7FEB352F', 'the uniforms hash with another multiplier',
     ['tests/test_train.py::test_training_samples_by_gumbel_max_at_the_known_uniforms']),
    ('rtd.py', "torch.mul(((x >> 8) & 0xFFFFFF).float(), 2.0 ** -24,", "torch.mul(((x >> 8) & 0xFFFFFF).float(), 2.0 ** -23,",
     'uniforms over [0, 2) instead of [0, 1)', ['tests/test_train.py::test_training_samples_by_gumbel_max_at_the_known_uniforms']),
]


def apply(scratch: Path, module: str, old: str, new: str):
    path = scratch/'electra_gdes'/module
    src = path.read_text()
    n = src.count(old)
    if n != 1: raise LookupError(f'{module}: the snippet occurs {n} times (expected once): {old!r}')
    path.write_text(src.replace(old, new))


HEAVY = ('torch', 'numpy', 'scipy.stats', 'pandas', 'sklearn.metrics', 'datasets', 'transformers', 'fastai.basics',
         'fastai.callback.training', 'fastai.text.all')
HEAVY_NAMES = {'transformers': ('ElectraConfig', 'ElectraForPreTraining', 'ElectraForMaskedLM', 'DebertaV2Config',
                                'DebertaV2ForMaskedLM', 'DebertaV2Model', 'BertTokenizerFast', 'AutoModel', 'AutoTokenizer')}


def preload():
    "Import the heavy dependencies (never electra_gdes) once, so that each forked test run starts in a second."
    import importlib
    for name in HEAVY:
        try: mod = importlib.import_module(name)
        except ImportError: continue
        for attr in HEAVY_NAMES.get(name, ()): getattr(mod, attr)     # transformers imports its classes lazily
    import pytest  # noqa: F401


def _pytest_args(tests): return ['-x', '-q', '-p', 'no:cacheprovider', '-W', 'ignore', *tests]


def run_tests(scratch: Path, tests: list[str], fork=True) -> tuple[int, str]:
    "pytest `-x -q` on `tests` from the repository root, importing electra_gdes from `scratch`: (exit code, output)."
    if not fork:
        env = {**os.environ, 'PYTHONPATH': f"{scratch}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        # the pytest script (not `python -m pytest`, which would put the repository, and its electra_gdes, first on sys.path)
        p = subprocess.run([str(Path(sys.executable).with_name('pytest')), *_pytest_args(tests)], cwd=ROOT, env=env,
                           capture_output=True, text=True)
        return p.returncode, p.stdout + p.stderr
    log = scratch/'pytest.log'
    pid = os.fork()
    if pid == 0:   # the child: its own sys.path and output, then exit without running the parent's cleanup
        rc = 3
        try:
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(fd, 1); os.dup2(fd, 2)
            sys.stdout = os.fdopen(1, 'w', buffering=1); sys.stderr = sys.stdout
            sys.path.insert(0, str(scratch))
            os.chdir(ROOT)
            import pytest
            rc = int(pytest.main(_pytest_args(tests)))
        except BaseException as e: print(f'mutate_recipe child: {e!r}')
        finally:
            sys.stdout.flush()
            os._exit(rc)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), log.read_text() if log.exists() else ''


def first_failure(out: str) -> str:
    m = re.search(r'^(?:FAILED|ERROR) (\S+)', out, re.M)
    return m.group(1).split('/')[-1] if m else out.strip().splitlines()[-1][:80] if out.strip() else '?'


def scratch_copy(tmp: Path, name: str) -> Path:
    d = tmp/name
    shutil.copytree(PKG, d/'electra_gdes', ignore=shutil.ignore_patterns('__pycache__'))
    return d


def check_isolation(tmp: Path, fork: bool):
    "The tests must import the scratch copy, not the repository's package."
    d = scratch_copy(tmp, 'probe')
    (d/'electra_gdes'/'__init__.py').write_text((d/'electra_gdes'/'__init__.py').read_text() + '\nraise ImportError("scratch copy imported")\n')
    rc, out = run_tests(d, TESTS, fork)
    if 'scratch copy imported' not in out:
        sys.exit('mutate_recipe: the tests did not import the scratch copy of electra_gdes; nothing would be measured.')


def mutate(tmp: Path, i: int, mutant, fork=True) -> tuple[str, str, float]:
    module, old, new, desc, *tests = mutant
    start = time.time()
    d = scratch_copy(tmp, f'm{i}')
    try: apply(d, module, old, new)
    except LookupError as e: return 'STALE', str(e), 0.0
    rc, out = run_tests(d, tests[0] if tests else TESTS, fork)
    shutil.rmtree(d, ignore_errors=True)
    return ('killed' if rc != 0 else 'SURVIVED'), (first_failure(out) if rc != 0 else ''), time.time() - start


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--jobs', type=int, default=1, help='mutants tested at the same time')
    ap.add_argument('--only', default='', help='only the mutants whose description contains this text')
    ap.add_argument('--no-fork', action='store_true', help='a fresh pytest process per mutant (slow: every run imports torch)')
    args = ap.parse_args(argv)
    fork = hasattr(os, 'fork') and not args.no_fork
    os.environ.update(OMP_NUM_THREADS='1', HF_HUB_OFFLINE='1', HF_DATASETS_OFFLINE='1', TRANSFORMERS_OFFLINE='1',
                      TOKENIZERS_PARALLELISM='false', PYTHONDONTWRITEBYTECODE='1')
    if fork: preload()
    mutants = [m for m in MUTANTS if args.only.lower() in m[3].lower()]
    start = time.time()
    with tempfile.TemporaryDirectory(prefix='mutate_recipe_') as tmp:
        tmp = Path(tmp)
        check_isolation(tmp, fork)
        rc, out = run_tests(scratch_copy(tmp, 'baseline'), TESTS, fork)
        if rc != 0: sys.exit(f'mutate_recipe: the recipe tests fail without any mutation; fix them first:\n{out[-3000:]}')
        if args.jobs == 1: results = [mutate(tmp, i, m, fork) for i, m in enumerate(mutants)]
        else:
            with ThreadPoolExecutor(args.jobs) as ex:   # the threads only wait on the processes they fork or start
                results = list(ex.map(lambda im: mutate(tmp, *im, fork=fork), enumerate(mutants)))
    w = max(len(m[3]) for m in mutants)
    print(f"{'mutant':<{w}}  {'module':<17} {'result':<9} by")
    for m, (res, by, secs) in zip(mutants, results):
        print(f'{m[3]:<{w}}  {m[0]:<17} {res:<9} {by}')
    killed = sum(r[0] == 'killed' for r in results)
    bad = [m[3] for m, r in zip(mutants, results) if r[0] != 'killed']
    print(f'\n{killed}/{len(mutants)} mutants killed in {time.time() - start:.0f} s' + (f"; not killed: {', '.join(bad)}" if bad else ''))
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
