"""One job at a time in a run folder, with real processes: a second `electra-pretrain` into a folder another job holds
exits 2 with one line naming the holder and changes nothing; two runs started together end with one run's files;
a lock left by a killed job is taken over with a message; torchrun's ranks share their job's lock."""
import json, os, signal, socket, subprocess, sys, time
from pathlib import Path
import pytest
from cli_helpers import BIN, ENV, script, tiny_pretrain_args, tiny_corpus, checksums
from electra_gdes.run_lock import RunLock, job_lock, lock_holder, lock_path
from electra_gdes.logs import read_log

HOLD = ("import sys, time\nfrom electra_gdes.run_lock import job_lock\n"
        "with job_lock(sys.argv[1]):\n    print('held', flush=True); time.sleep(float(sys.argv[2]))\n")

def _holder(folder, seconds=600, env=None):
    "A process that takes `folder`'s lock (as rank 0 of its own job) and keeps it `seconds`; returned once it holds it."
    p = subprocess.Popen([sys.executable, '-c', HOLD, str(folder), str(seconds)], stdout=subprocess.PIPE, text=True,
                         env={**ENV, **(env or {})})
    assert p.stdout.readline().strip() == 'held'
    return p

def _last(r): return r.stderr.strip().splitlines()[-1]

def test_a_second_job_is_refused_in_one_line_naming_the_holder(tmp_path):
    run = tmp_path/'out'/'r'
    holder = _holder(run)
    try:
        before = checksums(tmp_path/'out')
        r = script('electra-pretrain', *tiny_pretrain_args(tmp_path))
        assert r.returncode == 2 and 'Traceback' not in r.stderr, r.stderr[-2000:]
        line = _last(r)
        assert line.startswith(f'electra-pretrain: error: the run folder {run} is in use by another job '
                               f'(host {socket.gethostname()}, pid {holder.pid}, started '), line
        assert 'UTC' in line and '--run_name' in line and str(lock_path(run)) in line, line
        assert checksums(tmp_path/'out') == before and not run.exists() and not (tmp_path/'cache').exists()
    finally: holder.kill(); holder.wait()

def test_two_runs_started_together_one_is_refused(tmp_path):
    tiny_corpus(tmp_path)
    cmds = [[str(BIN/'electra-pretrain'), *map(str, tiny_pretrain_args(tmp_path, steps=s)), '--lr', lr]
            for s, lr in ((4, '1e-3'), (6, '2e-3'))]
    procs = [subprocess.Popen(c, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for c in cmds]
    outs = [p.communicate(timeout=600) for p in procs]
    codes = [p.returncode for p in procs]
    assert sorted(codes) == [0, 2], (codes, [o[1][-1500:] for o in outs])
    winner, loser = codes.index(0), codes.index(2)
    assert 'is in use by another job' in outs[loser][1].strip().splitlines()[-1]
    run = tmp_path/'out'/'r'
    steps = (4, 6)[winner]
    saved = json.loads((run/'run_config.json').read_text())
    assert (saved['steps'], saved['lr']) == (steps, (1e-3, 2e-3)[winner])     # one run's config, log and checkpoints
    assert [r['step'] for r in read_log(run/'log.csv')] == list(range(1, steps + 1))
    assert not lock_path(run).exists()

def test_a_killed_jobs_lock_is_taken_over(tmp_path):
    run = tmp_path/'out'/'r'
    holder = _holder(run)
    info = lock_holder(run)
    holder.send_signal(signal.SIGKILL); holder.wait()   # kill -9: no clean-up, the lock file stays
    assert lock_path(run).exists() and lock_holder(run) == info
    r = script('electra-pretrain', *tiny_pretrain_args(tmp_path))
    assert r.returncode == 0, r.stderr[-3000:]
    assert (f'Taking over the lock of the run folder {run} from a job that is gone (host {socket.gethostname()}, '
            f'pid {info["pid"]}, started {info["started"]})') in r.stderr
    assert not lock_path(run).exists() and (run/'discriminator').is_dir()

def test_other_ranks_share_their_jobs_lock(tmp_path):
    "Rank 1 of a job takes no lock (so it is not refused by its own rank 0); rank 0 of another job is refused."
    run = tmp_path/'r'
    holder = _holder(run, env={'RANK': '0'})
    try:
        code = ("import sys\nfrom electra_gdes.run_lock import job_lock\nwith job_lock(sys.argv[1]): print('in')")
        rank1 = subprocess.run([sys.executable, '-c', code, str(run)], env={**ENV, 'RANK': '1', 'LOCAL_RANK': '1'},
                               capture_output=True, text=True)
        assert rank1.returncode == 0 and rank1.stdout.strip() == 'in', rank1.stderr[-1000:]
        other = subprocess.run([sys.executable, '-c', code, str(run)], env={**ENV, 'RANK': '0'}, capture_output=True, text=True)
        assert other.returncode == 1 and 'RunLockedError' in other.stderr and f'pid {holder.pid}' in other.stderr
    finally: holder.kill(); holder.wait()

def test_torchrun_ranks_run_under_one_lock(tmp_path):
    "electra-pretrain under torchrun with 2 processes: rank 1 is not refused by rank 0's lock; the lock goes at the end."
    args = [*map(str, tiny_pretrain_args(tmp_path)), '--batch_size', '4']
    p = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2', '--no-python',
                        str(BIN/'electra-pretrain'), *args], env=ENV, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    assert 'in use by another job' not in p.stderr and '2 process(es)' in p.stdout
    run = tmp_path/'out'/'r'
    assert (run/'discriminator').is_dir() and not lock_path(run).exists()

def test_without_flock_the_holders_pid_decides(tmp_path, monkeypatch):
    "A file system without locks (flock: ENOLCK): a live holder's file still refuses, a dead holder's is taken over."
    import errno
    import electra_gdes.run_lock as rl
    run = tmp_path/'r'
    holder = _holder(run)   # a process with a working flock, which wrote its details
    def no_locks(fd, op): raise OSError(errno.ENOLCK, 'No locks available')
    monkeypatch.setattr(rl.fcntl, 'flock', no_locks)
    try:
        with pytest.raises(rl.RunLockedError, match=f'pid {holder.pid}'): rl.RunLock(run).acquire()
    finally: holder.kill(); holder.wait()
    with rl.RunLock(run, quiet=True) as lock: assert lock.taken_over['pid'] == holder.pid
    assert not lock_path(run).exists()
