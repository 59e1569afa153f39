"""Compare candidate tiny pretraining recipes by held-out replaced-token ROC-AUC within the same wall-clock budget.

    python scripts/tiny_recipe_search.py --jobs 2 --out checkpoints/recipe_search

Each candidate is `pretrain_config('electra', 'tiny', **overrides)` on the default corpus; `a+b` merges the overrides
of candidates `a` and `b` (later ones win). First, one after the other, a few timed steps of each candidate with
`--threads` torch threads give its seconds per step on this machine now, and so the number of steps that fit
`--budget_s`. Then each candidate trains that many steps (warmup 10% of them, the preset's linear decay to 0 at the
end: the whole schedule, not a run cut short), `--jobs` candidates at a time on one thread each, and is evaluated by
`RTDEvalCallback` five times, on the same held-out examples for every candidate of the same tokenizer and length (the
last `--held_out` examples of the corpus, never trained on). The budget is therefore the time a run takes alone with
`--threads` threads; `train_s` is how long it took alongside the others. Writes `results.csv`, `results.md` (the
table) and `auc.png` (held-out AUC against step and against budget seconds) to `--out`, and each run's `log.csv` /
`eval.csv` under `--out/runs`. The timings are whatever the machine gives at the time: run it when nothing else does.
"""
import argparse, csv, os, sys, time
from pathlib import Path

CANDIDATES = {
    'preset': {},                                                    # fp32, batch 32, lr 1e-3, length 128, generator 1/2 width
    'b16-lr2e-3': dict(batch_size=16, lr=2e-3),                      # the one-minute preset's recipe before this search
    'bf16': dict(precision='bf16'),
    'lr5e-3': dict(lr=5e-3),
    'vocab8k': dict(tokenizer='train', vocab_size=8000),             # a WordPiece vocabulary trained on the corpus
    'vocab2k': dict(tokenizer='train', vocab_size=2000),
    'gen1/4': dict(gen_width_ratio=0.25),
    'gen1/8': dict(gen_width_ratio=0.125),
    'b32-lr1e-3': dict(batch_size=32, lr=1e-3),                      # the preset since this search
    'len64': dict(max_length=64),
    'gen-1layer': dict(gen_depth_ratio=0.5),
    'layers4': dict(num_layers=4),
    # not a recipe knob but a probe: samples flatter than the generator's distribution carry a token-identity signal
    'temp2': dict(temperature=2.0),
}
DEFAULT = ('preset', 'b16-lr2e-3', 'bf16', 'gen1/4', 'vocab8k')
COLUMNS = ('candidate', 'overrides', 'sec_per_step', 'steps', 'budget_s', 'tokens_seen', 'train_s', 'auc', 'ap', 'replaced_share', 'f1',
           'disc_acc', 'all_original_acc', 'gen_acc', 'best_auc', 'tug_cos')

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--budget_s', type=float, default=540, help='seconds of training per candidate, alone on the machine (default 540)')
    p.add_argument('--threads', type=int, default=2, help='torch threads of the timing steps (default 2: the idle 2-core CPU)')
    p.add_argument('--candidates', nargs='+', default=list(DEFAULT), type=candidate_name, metavar='NAME',
                   help=f'candidates to run, a+b merging two (default: {" ".join(DEFAULT)}; all: {" ".join(CANDIDATES)})')
    p.add_argument('--add', action='store_true', help='keep the rows of an earlier search in --out (run with the same '
                   'settings), replacing those of the candidates run again')
    p.add_argument('--jobs', type=int, default=1, help='candidates trained at once, on one torch thread each (default 1)')
    p.add_argument('--held_out', type=int, default=256, help='held-out examples (the last of the corpus; default 256)')
    p.add_argument('--timing_steps', type=int, default=8, help='steps timed to size each run (the first 2 are not counted)')
    p.add_argument('--corpus', default='default', help="corpus as in PretrainConfig (default: the State of the Union addresses)")
    p.add_argument('--cache_dir', default='data_cache')
    p.add_argument('--out', default='checkpoints/recipe_search')
    p.add_argument('--seed', type=int, default=42)
    return p.parse_args(argv)

def candidate_name(name: str) -> str:
    "`name` if it is a candidate or candidates joined by '+'; an argparse error naming the unknown part otherwise."
    for part in name.split('+'):
        if part not in CANDIDATES:
            raise argparse.ArgumentTypeError(f"invalid choice: {part!r} (choose from {', '.join(CANDIDATES)}, or join them with '+')")
    return name

def overrides(name: str) -> dict:
    "The merged config overrides of candidate `name` ('a+b': those of a, then b's)."
    return {k: v for part in name.split('+') for k, v in CANDIDATES[part].items()}

def _config(name, args, **extra):
    from electra_gdes.config import pretrain_config
    return pretrain_config('electra', 'tiny', **{**overrides(name), 'corpus': args.corpus, 'cache_dir': args.cache_dir,
                                                'output_dir': str(Path(args.out)/'runs'), 'run_name': _run_name(name),
                                                'checkpoint_fractions': (), 'seed': args.seed, 'overwrite': True, **extra})

def _run_name(name): return name.replace('/', '_')

def _data(cfg, n_held_out):
    from electra_gdes.distributed import pretrain_data
    tok, ds = pretrain_data(cfg)
    if len(ds) <= 2 * n_held_out: raise ValueError(f'the corpus gives {len(ds)} examples: too few to hold out {n_held_out}; pass a smaller --held_out.')
    return tok, ds.select(range(len(ds) - n_held_out)), ds.select(range(len(ds) - n_held_out, len(ds)))

def seconds_per_step(cfg, tok, train, held_out, timing_steps) -> float:
    "Median seconds of a training step of `cfg` now, from `timing_steps` steps (the first two warm up and are dropped)."
    from dataclasses import replace
    from fastai.callback.core import Callback
    from electra_gdes.train import pretrain_learner, fit_steps
    class Times(Callback):
        order = 99
        def before_batch(self): self.t0 = time.perf_counter()
        def after_batch(self): self.times.append(time.perf_counter() - self.t0)
    times = Times(); times.times = []
    c = replace(cfg, steps=timing_steps, warmup_steps=1, log_every=timing_steps, eval_every=10**9, run_name=cfg.run_name + '-timing')
    learn = pretrain_learner(c, train, tok, cbs=[times])
    with learn.no_bar(): fit_steps(learn)
    t = sorted(times.times[2:])
    return t[len(t) // 2]

def size_candidate(name, args) -> tuple:
    "Seconds per step of candidate `name` with `args.threads` threads now, and the steps that fit `args.budget_s`."
    import torch
    torch.set_num_threads(args.threads)
    cfg = _config(name, args)
    tok, train, held_out = _data(cfg, args.held_out)
    sps = seconds_per_step(cfg, tok, train, held_out, args.timing_steps)
    return sps, max(10, int(0.92 * args.budget_s / sps))   # about 8% of the budget for the five evaluations

def train_candidate(name, args, sps, steps, threads) -> dict:
    "Train candidate `name` for `steps` steps on `threads` threads and evaluate it; its row of the results table."
    import torch
    torch.set_num_threads(threads)
    from electra_gdes.train import pretrain_learner, fit_steps
    from electra_gdes.rtd_eval import RTDEvalCallback
    cfg = _config(name, args, steps=steps, warmup_steps=max(1, steps // 10), eval_every=max(1, steps // 5),
                  log_every=max(1, steps // 20))
    tok, train, held_out = _data(cfg, args.held_out)
    ev = RTDEvalCallback()
    learn = pretrain_learner(cfg, train, tok, valid_dataset=held_out, cbs=[ev])
    t0 = time.perf_counter()
    with learn.no_bar(): fit_steps(learn)
    train_s = time.perf_counter() - t0
    last = ev.rows[-1]
    return {'candidate': name, 'overrides': ' '.join(f'{k}={v}' for k, v in overrides(name).items()) or '(the tiny preset)',
            'sec_per_step': round(sps, 4), 'steps': steps, 'budget_s': round(steps * sps), 'tokens_seen': steps * cfg.batch_size * cfg.max_length,
            'train_s': round(train_s, 1), **{k: round(last[k], 4) for k in ('auc', 'ap', 'replaced_share', 'f1', 'disc_acc',
                                                                          'all_original_acc', 'gen_acc', 'tug_cos')},
            'best_auc': round(max(r['auc'] for r in ev.rows), 4)}

def _typed(row: dict) -> dict:
    "A row read back from results.csv with its numbers as numbers."
    def number(v):
        try: return int(v)
        except ValueError: return float(v)
    return {k: v if k in ('candidate', 'overrides') else number(v) for k, v in row.items()}

def write_results(out: Path, rows, args):
    out.mkdir(parents=True, exist_ok=True)
    tmp = out/'results.csv.tmp'
    with open(tmp, 'w', newline='') as f:
        w = csv.DictWriter(f, COLUMNS); w.writeheader(); w.writerows(rows)
    os.replace(tmp, out/'results.csv')
    head = ('| candidate | overrides | s/step | steps | budget s | held-out AUC | AP (chance) | F1 | disc acc (all-original) | gen acc | tug cos |\n'
            '|---|---|---|---|---|---|---|---|---|---|---|\n')
    body = ''.join(f"| {r['candidate']} | {r['overrides']} | {r['sec_per_step']:.3f} | {r['steps']} | {r['budget_s']:.0f} | "
                   f"**{r['auc']:.3f}** | {r['ap']:.3f} ({r['replaced_share']:.3f}) | {r['f1']:.3f} | "
                   f"{r['disc_acc']:.3f} ({r['all_original_acc']:.3f}) | {r['gen_acc']:.3f} | {r['tug_cos']:+.3f} |\n" for r in rows)
    note = (f"\nBudget {args.budget_s:.0f} s of training per candidate: steps x seconds per step timed alone on {args.threads} "
            f"torch thread(s) (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}); trained {args.jobs} at a time on "
            f"one thread each; {args.held_out} held-out examples, seed {args.seed}.\n")
    (out/'results.md').write_text(head + body + note)

def plot_results(out: Path, rows):
    import matplotlib; matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from electra_gdes.rtd_eval import read_eval
    fig, axs = plt.subplots(1, 2, figsize=(12, 4))
    for i, r in enumerate(rows):
        ev = read_eval(out/'runs'/_run_name(r['candidate'])/'eval.csv')
        steps, auc = [e['step'] for e in ev], [e['auc'] for e in ev]
        axs[0].plot(steps, auc, 'o-', color=f'C{i}', label=r['candidate'])
        axs[1].plot([s * r['sec_per_step'] for s in steps], auc, 'o-', color=f'C{i}', label=r['candidate'])
    for ax, x in zip(axs, ('step', 'seconds of training alone (steps x timed s/step)')):
        ax.axhline(0.5, color='k', ls=':', lw=1); ax.set_xlabel(x); ax.set_ylabel('held-out replaced-token ROC-AUC'); ax.legend(fontsize=8)
    fig.suptitle('tiny ELECTRA recipes, the same wall-clock budget each'); fig.tight_layout()
    fig.savefig(out/'auc.png', dpi=100)

def main(argv=None):
    args = parse_args(argv)
    out, rows, sizes = Path(args.out), [], {}
    if args.add and (out/'results.csv').exists():
        rows = [_typed(r) for r in csv.DictReader(open(out/'results.csv')) if r['candidate'] not in args.candidates]
    for name in args.candidates:   # timed one after the other, each with the machine to itself
        sizes[name] = size_candidate(name, args)
        print(f'== {name}: {overrides(name) or "the tiny preset"}: {sizes[name][0]:.3f} s/step -> {sizes[name][1]} steps', flush=True)
    # one path for both: in this process, or --jobs spawned workers (one torch thread each)
    names, pool = list(sizes), None
    if args.jobs > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor
        pool = ProcessPoolExecutor(args.jobs, mp_context=mp.get_context('spawn'))
    threads = args.threads if pool is None else 1
    results = (pool.map if pool else map)(train_candidate, names, [args] * len(names), *zip(*sizes.values()), [threads] * len(names))
    for row in results:
        rows.append(row); print(row, flush=True)
        write_results(out, rows, args)   # after each candidate: an interrupted search keeps what it measured
    if pool: pool.shutdown()
    plot_results(out, rows)
    print((out/'results.md').read_text())
    return 0

if __name__ == '__main__': sys.exit(main())
