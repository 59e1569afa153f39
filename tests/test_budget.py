"""`--time_budget`: a run sized by wall-clock time ends on time and says what its budget bought; stopped and resumed it
keeps its decision and counts its earlier time; it is exactly the plain run of the steps it bought; bad budgets are
option errors before anything is written."""
import re, signal, subprocess, time
from pathlib import Path
from cli_helpers import BIN, ENV, script, tiny_pretrain_args
from electra_gdes.budget import BUDGET_FILE, read_budget
from electra_gdes.config import PretrainConfig, load_config
from electra_gdes.logs import read_log
from electra_gdes.optim import electra_lr

def budget_args(d, run_name, budget, *extra) -> list:
    "`tiny_pretrain_args` without --steps and --warmup_steps (the budget decides them), a line every 50 steps."
    a = [str(x) for x in tiny_pretrain_args(d, run_name)]
    for opt in ('--steps', '--warmup_steps'):
        i = a.index(opt); del a[i:i + 2]
    a[a.index('--log_every') + 1] = '50'
    return [*a, '--time_budget', budget, *map(str, extra)]

def bought(stdout) -> tuple:
    "(steps, warmup) of the log's budget line."
    m = re.search(r'The budget buys ([\d,]+) steps \(warmup ([\d,]+)\)', stdout)
    assert m, stdout[-3000:]
    return tuple(int(g.replace(',', '')) for g in m.groups())

def test_bad_budgets_are_option_errors_before_anything_is_written(tmp_path):
    both = script('electra-pretrain', *budget_args(tmp_path, 'r', '10m'), '--steps', '50')
    assert both.returncode == 2 and 'pass --time_budget alone to size the run by time, or --steps without --time_budget' in both.stderr
    bad = script('electra-pretrain', *budget_args(tmp_path, 'r', 'ten minutes'))
    assert bad.returncode == 2 and "time_budget='ten minutes' is not a duration" in bad.stderr, bad.stderr
    ft = script('electra-finetune', '--size', 'small', '--time_budget', '5 min', '--output_dir', tmp_path/'glue')
    assert ft.returncode == 2 and "time_budget='5 min' is not a duration" in ft.stderr, ft.stderr
    assert not (tmp_path/'out').exists() and not (tmp_path/'glue').exists() and 'Traceback' not in both.stderr + bad.stderr + ft.stderr

def test_a_budgeted_run_ends_on_time_and_says_what_the_budget_bought(tmp_path):
    t0 = time.monotonic()
    r = script('electra-pretrain', *budget_args(tmp_path, 'r', '20s'))
    wall = time.monotonic() - t0
    assert r.returncode == 0, r.stderr[-3000:]
    steps, warmup = bought(r.stdout)
    took = float(re.search(r'Time budget 20s: the run took \S+ \(([\d.]+) s', r.stdout).group(1))
    print(f'budget 20 s: {steps} steps bought, the run took {took:.1f} s (process {wall:.1f} s)')
    assert abs(took - 20) <= 0.15 * 20, r.stdout[-2000:]    # from the job's start to its exports, as the budget counts
    assert wall <= 20 * 1.15 + 5, wall                      # + the interpreter's start and exit
    run = tmp_path/'out'/'r'
    record, cfg = read_budget(run/BUDGET_FILE), load_config(PretrainConfig, run/'run_config.json')
    assert (cfg.steps, cfg.warmup_steps, cfg.time_budget) == (record['steps'], record['warmup_steps'], '20s') == (steps, warmup, '20s')
    assert warmup == round(0.1 * steps) and record['reproduce'] == f'--steps {steps} --warmup_steps {warmup}'
    rows = read_log(run/'log.csv')
    assert rows[-1]['step'] == steps
    for row in rows: assert abs(row['lr'] - 1e-3 * electra_lr(row['step'] - 1, steps, warmup)) < 1e-12   # a schedule of steps
    assert sorted(p.name for p in (run/'checkpoints').glob('*.pt')) == [f'step-{s:08d}.pt' for s in sorted({max(1, round(steps / 2)), steps})]

def test_a_stopped_budgeted_run_resumes_its_decision_and_is_the_plain_run_of_its_steps(tmp_path):
    args = budget_args(tmp_path, 'r', '25s', '--checkpoint_fractions', '0.25', '1')
    run = tmp_path/'out'/'r'
    p = subprocess.Popen([str(BIN/'electra-pretrain'), *args], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not any((run/'checkpoints').glob('*.pt.sha256')) and p.poll() is None and time.monotonic() < deadline: time.sleep(0.02)
    p.send_signal(signal.SIGTERM)   # a preemption after the first checkpoint: the run writes one more and exits 143
    out, err = p.communicate(timeout=120)
    assert p.returncode == 143, (out[-2000:], err[-2000:])
    steps, warmup = bought(out)
    record = read_budget(run/BUDGET_FILE)
    stopped_at = max(int(c.stem.split('-')[1]) for c in (run/'checkpoints').glob('*.pt'))
    assert stopped_at < steps, 'the run ended before it was stopped: nothing to resume'
    r = script('electra-pretrain', *budget_args(tmp_path, 'r', '25s'), '--resume')   # the same command again, with --resume
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'The budget buys' not in r.stdout and read_budget(run/BUDGET_FILE) == record   # never decided again
    assert f"Time budget 25s: its {steps:,} steps (warmup {warmup:,}) were decided when it started" in r.stdout, r.stdout[-3000:]
    assert f'spent before this restart (up to the checkpoint at step {stopped_at})' in r.stdout
    took, session = map(float, re.search(r'the run took \S+ \(([\d.]+) s; this session ([\d.]+) s\)', r.stdout).groups())
    assert took > session + 2, r.stdout[-1000:]   # its first session's time counts
    cfg = load_config(PretrainConfig, run/'run_config.json')
    assert (cfg.steps, cfg.warmup_steps) == (steps, warmup) and read_log(run/'log.csv')[-1]['step'] == steps
    # the run the budget bought is the plain run of its steps: same schedule, same losses, same weights
    # (in this process: the same one thread as the scripts', without a second interpreter's start)
    from electra_gdes.config import pretrain_config
    from electra_gdes.pretrain import run_pretraining
    run_pretraining(pretrain_config('electra', 'tiny', corpus=str(tmp_path/'corpus'), cache_dir=str(tmp_path/'cache'),
                                    output_dir=str(tmp_path/'out'), run_name='plain', hidden_size=32, num_heads=2, intermediate_size=64,
                                    embedding_size=32, num_layers=1, batch_size=4, steps=steps, warmup_steps=warmup, log_every=50, num_proc=1))
    key = lambda row: {k: v for k, v in row.items() if k != 'tokens_per_s'}
    assert [key(x) for x in read_log(run/'log.csv')] == [key(x) for x in read_log(tmp_path/'out'/'plain'/'log.csv')]
    from safetensors.torch import load_file
    a, b = (load_file(next((tmp_path/'out'/n/'discriminator').glob('*.safetensors'))) for n in ('r', 'plain'))
    assert a.keys() == b.keys() and all(a[k].equal(b[k]) for k in a)

def test_a_budgeted_run_under_torchrun_decides_once_for_every_process(tmp_path):
    """Two processes (torchrun, gloo) of a ModernBERT from scratch (another architecture under DDP too): both time the
    same number of steps (rank 0's count, so neither waits alone in an all-reduce), rank 0 decides, both train the decided
    steps; one budget line, one budget.json saying 2 processes."""
    modernbert = ('--backbone', 'modernbert', '--size', 'tiny', '--max_length', 32, '--vocab_size', 300, '--precision', 'fp32')
    r = subprocess.run([str(BIN/'torchrun'), '--standalone', '--nproc_per_node', '2', '-m', 'electra_gdes.pretrain',
                        *budget_args(tmp_path, 'r', '25s', *modernbert)], env=ENV, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    steps, warmup = bought(r.stdout)
    assert r.stdout.count('The budget buys') == 1
    run = tmp_path/'out'/'r'
    record = read_budget(run/BUDGET_FILE)
    assert (record['processes'], record['steps'], record['warmup_steps']) == (2, steps, warmup)
    assert read_log(run/'log.csv')[-1]['step'] == steps
    assert 'ModernBertForReplacedTokenDetection' in r.stdout
