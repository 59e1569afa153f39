"""`electra-export`: any training checkpoint as plain HF discriminator / generator directories that transformers loads
and the fine-tuning loader accepts, equal to the checkpoint's weights (GDES tables merged)."""
import os, subprocess
from pathlib import Path
import pytest, torch

from cli_helpers import BIN
ENV = {**os.environ, 'HF_HUB_OFFLINE': '1', 'HF_DATASETS_OFFLINE': '1', 'TRANSFORMERS_OFFLINE': '1', 'OMP_NUM_THREADS': '1',
       'MPLBACKEND': 'Agg', 'TOKENIZERS_PARALLELISM': 'false'}

@pytest.fixture(scope='module')
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp('export')
    corpus = d/'corpus.txt'
    corpus.write_text('\n\n'.join(f'Document {i}. ' + 'The union is strong and the people expect us to act. ' * 8 for i in range(8)))
    p = subprocess.run([str(BIN/'electra-pretrain'), '--size', 'tiny', '--corpus', str(corpus), '--cache_dir', str(d/'cache'),
                        '--output_dir', str(d/'out'), '--run_name', 'r', '--hidden_size', '32', '--num_heads', '2',
                        '--intermediate_size', '64', '--embedding_size', '32', '--num_layers', '1', '--batch_size', '4',
                        '--steps', '4', '--warmup_steps', '1', '--log_every', '2', '--checkpoint_fractions', '0.5', '1'],
                       env=ENV, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    return d, d/'out'/'r'

def export(*args):
    return subprocess.run([str(BIN/'electra-export'), *map(str, args)], env=ENV, capture_output=True, text=True, timeout=600)

def merged_discriminator_state(ckpt_path) -> dict:
    "The discriminator's weights as the checkpoint holds them, with each GDES table merged: E_G + E_delta."
    sd = torch.load(ckpt_path, weights_only=True)['model']
    disc = {k[len('discriminator.'):]: v for k, v in sd.items() if k.startswith('discriminator.')}
    for k in [k for k in disc if k.endswith('.delta')]:
        base = k[:-len('.delta')]
        source = disc.pop(base + '.source.weight')   # the generator's table, which the GDES embedding reads
        assert torch.equal(source, sd['generator.' + base + '.weight'])
        disc[base + '.weight'] = source + disc.pop(k)
    return disc

def test_export_a_mid_run_checkpoint_loads_everywhere_and_equals_it(run, tmp_path):
    from transformers import AutoModelForPreTraining, ElectraForPreTraining, ElectraForMaskedLM
    from electra_gdes.checkpoint import checkpoint_path
    from electra_gdes.glue_model import load_backbone
    d, run_dir = run
    p = export(run_dir, '--out', tmp_path/'half', '--step', 2)
    assert p.returncode == 0, p.stderr[-2000:]
    disc_dir = tmp_path/'half'/'discriminator'
    model = AutoModelForPreTraining.from_pretrained(disc_dir)
    assert isinstance(model, ElectraForPreTraining)
    expected = merged_discriminator_state(checkpoint_path(run_dir, 2))
    got = ElectraForPreTraining.from_pretrained(disc_dir).state_dict()
    assert any(k.endswith('word_embeddings.weight') for k in expected)
    for k, v in expected.items(): assert torch.equal(got[k], v), k
    # step 2 is not the end of the run: its weights differ from the final export's
    final = ElectraForPreTraining.from_pretrained(run_dir/'discriminator').state_dict()
    assert any(not torch.equal(final[k], got[k]) for k in expected)
    gen = ElectraForMaskedLM.from_pretrained(tmp_path/'half'/'generator')
    sd = torch.load(checkpoint_path(run_dir, 2), weights_only=True)['model']
    for k, v in gen.state_dict().items():
        if 'generator.' + k in sd: assert torch.equal(v, sd['generator.' + k]), k
    assert '2 of 4 steps' in (disc_dir/'README.md').read_text()   # the card says how far the run got
    backbone, tokenizer = load_backbone(disc_dir)
    assert backbone.config.hidden_size == 32 and len(tokenizer) == backbone.get_input_embeddings().num_embeddings

def test_export_of_a_run_dir_takes_its_newest_checkpoint(run, tmp_path):
    from transformers import ElectraForPreTraining
    from electra_gdes.checkpoint import checkpoint_path
    d, run_dir = run
    p = export(run_dir, '--out', tmp_path/'latest')
    assert p.returncode == 0, p.stderr[-2000:]
    got = ElectraForPreTraining.from_pretrained(tmp_path/'latest'/'discriminator').state_dict()
    for k, v in merged_discriminator_state(checkpoint_path(run_dir, 4)).items(): assert torch.equal(got[k], v), k
    p = export(checkpoint_path(run_dir, 2), '--out', tmp_path/'file')   # a checkpoint file works too
    assert p.returncode == 0 and (tmp_path/'file'/'generator'/'config.json').exists(), p.stderr[-2000:]

def test_bad_input_gets_one_line_and_exit_2(run, tmp_path):
    d, run_dir = run
    cases = [((tmp_path/'nothing', '--out', tmp_path/'o'), 'does not exist'),
             ((run_dir, '--out', tmp_path/'o', '--step', 3), 'no checkpoint at step 3 (it has: 2, 4)'),
             ((d, '--out', tmp_path/'o'), 'no checkpoints/ folder')]
    for args, expected in cases:
        p = export(*args)
        errors = [l for l in p.stderr.splitlines() if l.startswith('electra-export: error:')]
        assert p.returncode == 2 and len(errors) == 1 and expected in errors[0], (args, p.stderr[-1500:])
        assert 'Traceback' not in p.stderr
    assert not (tmp_path/'o').exists()
