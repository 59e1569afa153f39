"Builders for the tests that run the installed console scripts (`.venv/bin/electra-pretrain`, `electra-finetune`)."
import hashlib, os, subprocess, sys
from pathlib import Path

BIN = Path(sys.executable).parent
TEXT = ("The union is strong. We met in a time of trial and came through it together. "
        "Our work is not done, and the people expect the congress to act. ") * 3
ENV = {**os.environ, 'OMP_NUM_THREADS': '1', 'MPLBACKEND': 'Agg', 'HF_HUB_OFFLINE': '1', 'HF_DATASETS_OFFLINE': '1',
       'TRANSFORMERS_OFFLINE': '1', 'PYTHONHASHSEED': '0'}

def script(name, *args, cwd=None, timeout=600) -> subprocess.CompletedProcess:
    "Run the installed console script `name` with `args`; stdout and stderr captured."
    return subprocess.run([str(BIN/name), *map(str, args)], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout)

def tiny_corpus(d) -> Path:
    "A folder of 12 short text files."
    d = Path(d)/'corpus'
    if not d.exists():
        d.mkdir(parents=True)
        for i in range(12): (d/f'doc{i}.txt').write_text(f'Address number {i}.\n' + TEXT.replace('. ', '.\n'))
    return d

def tiny_pretrain_args(d, run_name='r', steps=4, corpus=None) -> list:
    "Options of a seconds-long pretraining run of a 1-layer, 32-wide model on `tiny_corpus(d)`, everything under `d`."
    d = Path(d)
    return ['--corpus', corpus or tiny_corpus(d), '--cache_dir', d/'cache', '--output_dir', d/'out', '--run_name', run_name,
            '--hidden_size', 32, '--num_heads', 2, '--intermediate_size', 64, '--embedding_size', 32, '--num_layers', 1,
            '--batch_size', 4, '--steps', steps, '--warmup_steps', 1, '--log_every', 1, '--num_proc', 1]

def checksums(d) -> dict:
    "`{relative path: sha256}` of every file under `d`."
    d = Path(d)
    return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.rglob('*')) if p.is_file()}
