"""Issue 21 item 4: the RTD step compiles as one graph with static shapes. On the CPU, dynamo shows it: no graph break
in the model (generator, sampler with its counter-based uniforms, fixed-slot gather, discriminator) and the loss, and no
recompile from one step to the next (other data, other step keys, same shapes). The GPU's CUDA graphs are
`scripts/gpu_check.sh`'s to measure."""
import os
import torch
import torch._dynamo as dynamo
from fastai.callback.core import Callback
from torch._dynamo.testing import CompileCounterWithBackend
from electra_gdes.model import build_rtd_model, set_attention, resolve_attention, SDPA_ATTENTION
from electra_gdes.rtd import mask_tokens, masked_slots, RTDLoss
from electra_gdes.train import pretrain_learner, sampling_uniforms
from electra_gdes.data import pad_collate
from helpers import word_level_data, tiny_pretrain_cfg

MAX_LENGTH = 32

def _static_batch(tok, ds, cfg, i):
    "Batch `i` of 8 examples padded to `MAX_LENGTH`, masked and with step `i`'s uniforms: the model's inputs, then the ids."
    ids, attn, tt = pad_collate([ds[j] for j in range(i * 8, i * 8 + 8)], tok.pad_token_id, pad_to_multiple_of=MAX_LENGTH)
    masked, is_masked = mask_tokens(ids, attn, tok.all_special_ids, tok.mask_token_id, len(tok), cfg.mask_prob, cfg.mask_style,
                                    torch.Generator().manual_seed(i), max_length=MAX_LENGTH)
    slots = masked_slots(cfg.mask_prob, MAX_LENGTH, MAX_LENGTH)
    return masked, attn, tt, is_masked, sampling_uniforms(cfg.seed, i, torch.arange(8), slots), ids

def _setup(tmp_path):
    tok, ds = word_level_data()
    cfg = tiny_pretrain_cfg(tmp_path, max_length=MAX_LENGTH)
    torch.manual_seed(0)
    model = set_attention(build_rtd_model(cfg, tok), resolve_attention('sdpa', 'cpu'))
    loss = RTDLoss(cfg.disc_weight)
    def step(masked, attn, tt, is_masked, noise, ids):
        return loss(model(masked, attn, tt, is_masked, noise), ids, is_masked, attn)
    def batch(i): return _static_batch(tok, ds, cfg, i)
    step.model = model
    return step, batch

def test_the_step_is_one_graph_without_breaks(tmp_path):
    step, batch = _setup(tmp_path)
    b = batch(0)
    assert b[0].shape == (8, MAX_LENGTH)
    explained = dynamo.explain(step)(*b)
    assert explained.graph_break_count == 0, [r.reason for r in explained.break_reasons]
    assert explained.graph_count == 1

def test_no_recompile_across_steps_forward_and_backward(tmp_path):
    step, batch = _setup(tmp_path)
    dynamo.reset()
    counter = CompileCounterWithBackend('aot_eager')     # AOTAutograd traces the backward too
    compiled = torch.compile(step, backend=counter, dynamic=False)
    losses = []
    for i in range(3):
        loss = compiled(*batch(i))
        loss.backward()
        losses.append(loss.item())
    assert counter.frame_count == 1, f'{counter.frame_count} compilations for 3 steps of the same shapes'
    assert len(set(losses)) == 3                                    # three different batches did go through
    step.model.eval()                                               # no dropout: the compiled step computes what eager does
    torch.testing.assert_close(compiled(*batch(0)).detach(), step(*batch(0)).detach(), rtol=1e-5, atol=1e-5)

def test_compiled_learner_pads_to_max_length_and_compiles_model_and_loss(tmp_path):
    tok, ds = word_level_data()
    learn = pretrain_learner(tiny_pretrain_cfg(tmp_path, max_length=MAX_LENGTH, compile=True), ds, tok, device=torch.device('cpu'))
    ids, attn, tt = next(iter(learn.dls.train))
    assert ids.shape[1] == MAX_LENGTH                                  # static shapes: every batch at max_length
    assert {m.config._attn_implementation for m in learn.model.modules() if hasattr(m, 'config')} == {SDPA_ATTENTION}
    assert learn.model._compiled_call_impl is not None                 # compiled in place: parameter names unchanged
    assert not any('_orig_mod' in k for k in learn.model.state_dict())
    assert learn.loss_func.terms is not RTDLoss.terms                  # the loss's arithmetic compiled too
    plain = pretrain_learner(tiny_pretrain_cfg(tmp_path, max_length=MAX_LENGTH, run_name='plain'), ds, tok, device=torch.device('cpu'))
    assert next(iter(plain.dls.train))[0].shape[1] < MAX_LENGTH         # not compiled: dynamic padding, as before

def test_compiled_under_ddp_the_graphs_are_split_at_ddps_buckets(tmp_path, monkeypatch):
    """`compile_step` compiles in place before `DDPCallback` wraps the model; the compilation happens at the first step,
    inside DDP's forward, so dynamo's DDPOptimizer splits the graph at the gradient buckets (each bucket's all-reduce can
    start while the backward goes on), as compiling the wrapped model would. A one-process gloo group; dynamo's `eager`
    backend instead of inductor (seconds, not minutes: what is checked is where dynamo cuts, not the kernels)."""
    import torch.distributed as dist
    from torch._dynamo.backends.distributed import DDPOptimizer
    from electra_gdes.distributed import DDPCallback, RTDDataParallel
    plain_compile = torch.compile   # nn.Module.compile calls it too
    monkeypatch.setattr(torch, 'compile', lambda f, **kw: plain_compile(f, backend='eager', dynamic=False))
    splits = []
    compile_fn = DDPOptimizer.compile_fn
    def counting(self, gm, inputs):
        splits.append(self.bucket_bytes_cap)
        return compile_fn(self, gm, inputs)
    monkeypatch.setattr(DDPOptimizer, 'compile_fn', counting)
    monkeypatch.setenv('MASTER_ADDR', '127.0.0.1'); monkeypatch.setenv('MASTER_PORT', str(29500 + os.getpid() % 1000))
    dynamo.reset()
    dist.init_process_group('gloo', rank=0, world_size=1)
    try:
        tok, ds = word_level_data()
        cfg = tiny_pretrain_cfg(tmp_path, max_length=MAX_LENGTH, compile=True, steps=2)
        learn = pretrain_learner(cfg, ds, tok, device=torch.device('cpu'), cbs=[DDPCallback()])
        wrapped = []
        class Peek(Callback):
            def before_batch(self): wrapped.append(isinstance(self.learn.model, RTDDataParallel))
        learn.add_cb(Peek())
        learn.fit(1)
    finally:
        dist.destroy_process_group(); dynamo.reset()
    assert wrapped and all(wrapped)            # the steps ran wrapped in DDP
    # DDP's default buckets (25 MiB) sized the split: the compiler saw the DDP it ran under
    assert splits and set(splits) == {25 * 1024 * 1024}, 'the compiled model did not go through the DDPOptimizer: it was compiled outside DDP'

def test_inductor_links_torch_from_a_path_without_spaces(tmp_path, monkeypatch):
    """A clone under a path with a space (`~/My Projects/...`): inductor's unquoted `-L<torch>/lib` would split there, so
    `link_torch_without_spaces` points it at a link without spaces to the same folder; nothing changes otherwise."""
    import torch.utils.cpp_extension as cpp
    from electra_gdes.train import link_torch_without_spaces
    real = cpp.TORCH_LIB_PATH
    plain = tmp_path/'torch_lib'
    plain.symlink_to(real, target_is_directory=True)
    monkeypatch.setattr(cpp, 'TORCH_LIB_PATH', str(plain))
    assert link_torch_without_spaces() is None and cpp.TORCH_LIB_PATH == str(plain)   # no space: left as it is
    spaced = tmp_path/'My Projects'/'lib'
    spaced.parent.mkdir(); spaced.symlink_to(real, target_is_directory=True)
    monkeypatch.setattr(cpp, 'TORCH_LIB_PATH', str(spaced))
    link = link_torch_without_spaces()
    assert link == cpp.TORCH_LIB_PATH and not any(c.isspace() for c in link)
    assert os.path.samefile(link, real) and os.path.isfile(os.path.join(link, 'libtorch_cpu.so'))
    assert link_torch_without_spaces() is None   # made once: the second call finds nothing to change

def _decoupled_setup(tmp_path):
    "DeBERTa with the Enhanced Mask Decoder, stepped decoupled (issue 18): the generator's step and the discriminator's."
    from electra_gdes.config import pretrain_config
    from electra_gdes.model import RTDOutput
    tok, ds = word_level_data()
    cfg = pretrain_config('deberta', 'tiny', hidden_size=32, num_heads=2, intermediate_size=64, embedding_size=32, num_layers=4,
                          max_position_embeddings=64, max_length=MAX_LENGTH, position_buckets=16, output_dir=str(tmp_path))
    assert cfg.emd and cfg.decoupled_training
    torch.manual_seed(0)
    model = build_rtd_model(cfg, tok)
    def gen_step(masked, attn, tt, is_masked, noise, ids):
        out = model(masked, attn, tt, is_masked, noise, phase='generator')
        return RTDLoss.mlm_term(out, ids), out.disc_input
    def disc_step(disc_input, attn, tt, ids):
        logits = model(disc_input, attn, tt, phase='discriminator')
        return RTDLoss.disc_term(RTDOutput(None, None, disc_input, logits, None, None), ids, attn)
    def batch(i): return _static_batch(tok, ds, cfg, i)
    return gen_step, disc_step, batch

def test_decoupled_steps_are_one_graph_each_without_breaks_or_recompiles(tmp_path):
    gen_step, disc_step, batch = _decoupled_setup(tmp_path)
    b = batch(0)
    explained = dynamo.explain(gen_step)(*b)
    assert (explained.graph_count, explained.graph_break_count) == (1, 0), [r.reason for r in explained.break_reasons]
    _, disc_input = gen_step(*b)
    explained = dynamo.explain(disc_step)(disc_input, b[1], b[2], b[5])
    assert (explained.graph_count, explained.graph_break_count) == (1, 0), [r.reason for r in explained.break_reasons]
    dynamo.reset()
    counter = CompileCounterWithBackend('aot_eager')
    gen_c, disc_c = (torch.compile(f, backend=counter, dynamic=False) for f in (gen_step, disc_step))
    losses = []
    for i in range(3):
        masked, attn, tt, is_masked, noise, ids = batch(i)
        mlm, disc_input = gen_c(masked, attn, tt, is_masked, noise, ids)
        mlm.backward()
        disc = disc_c(disc_input, attn, tt, ids)
        disc.backward()
        losses.append((mlm.item(), disc.item()))
    assert counter.frame_count == 2, f'{counter.frame_count} compilations for 3 steps of 2 phases'
    assert len(set(losses)) == 3
