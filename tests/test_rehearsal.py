"""The dress rehearsal (issue 9 part 8): a 2-process torchrun tiny run with --grad_accum 2 and stdout to a file is
stopped by SIGTERM to its process group, restarted with --resume, and ends with the weights of an uninterrupted run;
its stdout stays bounded; a rerun without --resume is refused and leaves the run directory byte for byte as it was."""
import hashlib, os, signal, subprocess, sys, time
from pathlib import Path
import pytest, torch
from electra_gdes.logs import read_log
from electra_gdes.checkpoint import checkpoint_path

from cli_helpers import BIN
STEPS, EVERY = 16, 4
ENV = {**os.environ, 'HF_HUB_OFFLINE': '1', 'HF_DATASETS_OFFLINE': '1', 'TRANSFORMERS_OFFLINE': '1', 'OMP_NUM_THREADS': '1',
       'MPLBACKEND': 'Agg', 'TOKENIZERS_PARALLELISM': 'false'}

def _cmd(tmp_path, run_name, *extra):
    corpus = tmp_path/'corpus.txt'
    if not corpus.exists():
        corpus.write_text('\n\n'.join(f'Document {i}. ' + 'The union is strong and the people expect us to act. ' * 8
                                      for i in range(16)))
    return [str(BIN/'torchrun'), '--standalone', '--nproc_per_node', '2', '-m', 'electra_gdes.pretrain', '--size', 'tiny',
            '--corpus', str(corpus), '--cache_dir', str(tmp_path/'cache'), '--output_dir', str(tmp_path/'out'),
            '--run_name', run_name, '--hidden_size', '32', '--num_heads', '2', '--intermediate_size', '64',
            '--embedding_size', '32', '--num_layers', '1', '--batch_size', '8', '--grad_accum', '2', '--steps', str(STEPS),
            '--warmup_steps', '2', '--log_every', str(EVERY), '--checkpoint_fractions', '1', *extra]

def _start(cmd, stdout_path):
    out = open(stdout_path, 'ab')
    return subprocess.Popen(cmd, env=ENV, stdout=out, stderr=subprocess.PIPE, start_new_session=True), out

def _run(cmd, stdout_path, timeout=600):
    p, out = _start(cmd, stdout_path)
    try: _, err = p.communicate(timeout=timeout)
    finally: out.close()
    return p.returncode, err.decode()

def _checksums(d: Path) -> dict:
    return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.rglob('*')) if p.is_file()}

def _step_lines(path): return [l for l in Path(path).read_text().splitlines() if l.startswith('step ')]

def test_dress_rehearsal(tmp_path):
    # torchrun comes with torch (scripts/setup.sh): its absence is a broken install, never a reason to skip
    assert (BIN/'torchrun').exists(), f'{BIN}/torchrun is missing: run bash scripts/setup.sh'
    rc, err = _run(_cmd(tmp_path, 'full'), tmp_path/'full.out')
    assert rc == 0, err[-3000:]

    # the same run, its whole process group sent SIGTERM once it has logged a row
    log = tmp_path/'out'/'cut'/'log.csv'
    p, out = _start(_cmd(tmp_path, 'cut'), tmp_path/'cut.out')
    deadline = time.time() + 600
    while p.poll() is None and time.time() < deadline and not (log.exists() and len(read_log(log)) >= 1): time.sleep(0.05)
    assert p.poll() is None, 'the run ended before it could be interrupted: ' + p.stderr.read().decode()[-2000:]
    os.killpg(p.pid, signal.SIGTERM)
    _, err = p.communicate(timeout=300); out.close()
    err = err.decode()
    assert p.returncode != 0, err[-3000:]
    ckpts = sorted((tmp_path/'out'/'cut'/'checkpoints').glob('step-*.pt'))
    assert len(ckpts) == 1, (ckpts, err[-3000:])
    stopped_at = int(ckpts[0].stem.split('-')[1])
    assert EVERY <= stopped_at < STEPS, err[-3000:]   # a preemption checkpoint at an optimizer-step boundary mid-run

    rc, err = _run(_cmd(tmp_path, 'cut', '--resume'), tmp_path/'cut.out')
    assert rc == 0, err[-3000:]
    assert f'at step {stopped_at} of {STEPS}' in (tmp_path/'cut.out').read_text()
    full, cut = (torch.load(checkpoint_path(tmp_path/'out'/r, STEPS), weights_only=True)['model'] for r in ('full', 'cut'))
    assert full.keys() == cut.keys()
    for k in full: assert torch.equal(full[k], cut[k]), k
    assert [r['step'] for r in read_log(log)] == [r['step'] for r in read_log(tmp_path/'out'/'full'/'log.csv')]

    # stdout: one line per logged step (the interrupted part once, then the rest), a bounded number of others
    full_lines = _step_lines(tmp_path/'full.out')
    assert [int(l.split()[1].split('/')[0]) for l in full_lines] == list(range(EVERY, STEPS + 1, EVERY))
    cut_lines = _step_lines(tmp_path/'cut.out')
    assert len(full_lines) <= len(cut_lines) <= len(full_lines) + 1
    for f, launches in (('full.out', 1), ('cut.out', 2)):
        text = (tmp_path/f).read_text()
        other = [l for l in text.splitlines() if not l.startswith('step ')]
        # what a launch prints besides the step lines (config, data summary, exports) does not grow with the steps
        assert '\r' not in text and len(other) <= 150 * launches, (f, len(other))

    # a rerun without --resume is refused and touches nothing
    run_dir = tmp_path/'out'/'cut'
    before = _checksums(run_dir)
    rc, err = _run(_cmd(tmp_path, 'cut'), tmp_path/'rerun.out')
    assert rc != 0 and '--resume' in err + (tmp_path/'rerun.out').read_text(), err[-3000:]
    assert _checksums(run_dir) == before
