"Optimiser tests on real HF models and a full fastai training step (the notebook tests the math on toy tensors)."
import torch
from torch import nn
from fastai.learner import Learner
from fastai.callback.core import Callback
from fastai.data.core import DataLoaders
from fastai.losses import MSELossFlat
from fastai.torch_core import norm_bias_params
from transformers import ElectraConfig, ElectraForPreTraining, DebertaV2Config, DebertaV2ForMaskedLM
from electra_gdes.config import pretrain_config
from electra_gdes.optim import no_decay_param_groups, pretrain_opt_func, StepLRScheduler, lr_at_step


def _names(model, params):
    ids = {id(p) for p in params}
    return {n for n, p in model.named_parameters() if id(p) in ids}


def test_hf_models_layernorm_and_bias_not_decayed():
    small = dict(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32)
    for model in (ElectraForPreTraining(ElectraConfig(embedding_size=8, **small)),
                  DebertaV2ForMaskedLM(DebertaV2Config(relative_attention=True, position_buckets=8, **small))):
        decay, no_decay = no_decay_param_groups(model)
        names = {n for n, _ in model.named_parameters()}
        expected_no_decay = {n for n in names if 'LayerNorm' in n or n.endswith('bias')}
        assert expected_no_decay and _names(model, no_decay) == expected_no_decay
        assert _names(model, decay) == names - expected_no_decay
        # fastai's own rule (wd_bn_bias=False) picks the same parameters
        assert _names(model, norm_bias_params(model)) == expected_no_decay


class _FirstStep(Callback):
    "Keep the parameters and gradients right before, and the parameters right after, the first optimiser step."
    order = 100
    def before_step(self):
        if self.train_iter == 0:
            self.before = [(p.detach().clone(), p.grad.detach().clone()) for p in self.learn.model.parameters()]
            self.step_lr = self.opt.hypers[0]['lr']
    def after_step(self):
        if self.train_iter == 0: self.after = [p.detach().clone() for p in self.learn.model.parameters()]


def test_learner_first_step_is_closed_form_with_decoupled_decay():
    cfg = pretrain_config('electra', 'tiny', steps=4, warmup_steps=0, lr=1e-2)
    torch.manual_seed(0)
    ds = [(torch.randn(4), torch.randn(2)) for _ in range(8)]
    dls = DataLoaders.from_dsets(ds, ds[:2], bs=2, device='cpu')
    model = nn.Sequential(nn.Linear(4, 3), nn.LayerNorm(3), nn.Linear(3, 2))
    first = _FirstStep()
    learn = Learner(dls, model, loss_func=MSELossFlat(), opt_func=pretrain_opt_func(cfg),
                    splitter=no_decay_param_groups, cbs=[StepLRScheduler(cfg), first])
    learn.fit(1)
    assert first.step_lr == lr_at_step(cfg, 0) == 1e-2
    no_decay_ids = {id(p) for p in no_decay_param_groups(model)[1]}
    assert len(no_decay_ids) == 4  # two linear biases, LayerNorm weight and bias
    # first step from zero moments: m = 0.1 g, v = 0.001 g^2, w <- w (1 - lr wd) - lr m / (sqrt(v) + eps)
    for p, (w, g), new in zip(model.parameters(), first.before, first.after):
        wd = 0. if id(p) in no_decay_ids else cfg.weight_decay
        m, v = 0.1 * g, 0.001 * g * g
        torch.testing.assert_close(new, w * (1 - first.step_lr * wd) - first.step_lr * m / (v.sqrt() + cfg.adam_eps))
