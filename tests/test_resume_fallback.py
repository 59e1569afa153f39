"""Issue 16 part 6: `--resume` walks back past a newest checkpoint whose digest matches but that cannot be used (it does
not unpickle, or its weights do not fit the model), with a warning naming it, to the one before; and a resume prints no
fastai "shadowing" warning."""
import hashlib, io, warnings
import pytest, torch
from electra_gdes.train import pretrain_learner, fit_steps
from electra_gdes.checkpoint import resume_from_latest, checkpoint_path, read_checkpoint
from helpers import word_level_data, tiny_pretrain_cfg

def _rewrite(path, data: bytes):
    "Replace a checkpoint's bytes and its digest: a file the digest check accepts."
    path.write_bytes(data)
    path.with_name(path.name + '.sha256').write_text(hashlib.sha256(data).hexdigest())

def _wrong_shape(path):
    state = read_checkpoint(path)
    name = next(k for k in state['model'] if k.endswith('word_embeddings.weight'))
    state['model'][name] = torch.zeros(3, 3)
    buf = io.BytesIO(); torch.save(state, buf)
    return buf.getvalue()

@pytest.mark.parametrize('damage', ['not a pickle', 'wrong shape'])
def test_resume_falls_back_past_a_checkpoint_that_does_not_load(tmp_path, damage):
    tok, ds = word_level_data()
    cfg = tiny_pretrain_cfg(tmp_path, steps=4, checkpoint_fractions=(0.5, 1))
    fit_steps(pretrain_learner(cfg, ds, tok, device=torch.device('cpu')))
    newest = checkpoint_path(cfg.run_dir, 4)
    _rewrite(newest, b'\x80\x04garbage that is no pickle' if damage == 'not a pickle' else _wrong_shape(newest))
    learn = pretrain_learner(cfg, ds, tok, device=torch.device('cpu'))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        assert resume_from_latest(learn) == 2
    messages = [str(w.message) for w in caught]
    assert any(str(newest) in m and 'cannot be loaded' in m for m in messages), messages
    assert not any('shadowing' in m for m in messages), messages
    # the weights are the step-2 checkpoint's, every one of them (the failed load may have copied some)
    good = read_checkpoint(checkpoint_path(cfg.run_dir, 2))['model']
    for k, v in learn.model.state_dict().items(): assert torch.equal(v, good[k]), k

def test_resume_with_no_loadable_checkpoint_says_how_to_start_over(tmp_path):
    tok, ds = word_level_data()
    cfg = tiny_pretrain_cfg(tmp_path, steps=2, checkpoint_fractions=(1,))
    fit_steps(pretrain_learner(cfg, ds, tok, device=torch.device('cpu')))
    _rewrite(checkpoint_path(cfg.run_dir, 2), b'nothing')
    with pytest.warns(UserWarning, match='cannot be loaded'), pytest.raises(RuntimeError, match='without --resume'):
        resume_from_latest(pretrain_learner(cfg, ds, tok, device=torch.device('cpu')))
