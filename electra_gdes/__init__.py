"""ELECTRA-style replaced token detection with DeBERTaV3 gradient-disentangled embedding sharing (GDES), pretrained with fastai and proven on GLUE

electra_gdes pretrains language models by **replaced token detection** (RTD): a small generator fills masked positions
with its own Gumbel-max samples, and the discriminator learns which tokens were replaced. The embeddings of the two are
shared in one of three ways: `gdes` (DeBERTaV3's gradient-disentangled sharing, E_D = sg(E_G) + E_delta), `es`
(ELECTRA's tying) or `nes` (none). Backbones are the Hugging Face ELECTRA (small, base, large) and DeBERTa-v3 (xsmall,
small, base, large) models, plus a `tiny` preset that trains on a laptop CPU in minutes. The pretrained
discriminator is then fine-tuned on **GLUE** with ELECTRA's recipe (layer-wise learning-rate decay, seeded runs, best-run
selection) and written out as the 11 files of a leaderboard submission.

## Quick start

`electra-pretrain` with no options fetches the default corpus (233 State of the Union addresses, public domain),
caches the ELECTRA examples, pretrains the `tiny` ELECTRA preset with GDES and exports a Hugging Face discriminator;
`electra-finetune` fine-tunes it on the GLUE tasks:

```bash
electra-pretrain                                  # tiny ELECTRA, GDES, on the default corpus
electra-pretrain --list_presets                   # every backbone / size with its recipe
electra-pretrain --size small --precision bf16    # ELECTRA-small as published, on a GPU
electra-finetune --checkpoint checkpoints/pretrain/electra-tiny-gdes/discriminator --glue_dir GLUE
```

The same steps are in Python, in the walkthrough notebooks [Pretrain](Pretrain.ipynb) and
[Fine-tune on GLUE](Finetune_GLUE.ipynb).

Modules:

- `electra_gdes.rtd_eval`: Every `eval_every` steps, the discriminator and generator on the held-out examples with fixed masks and sampling noise (ROC-AUC, average precision, precision / recall / F1, the all-original baseline, MLM loss and accuracy), the tug-of-war between the MLM and RTD gradients on the embeddings, and the plot of a run.
- `electra_gdes.sharing_study`: The three embedding-sharing modes trained under the same budget, data and seed: held-out RTD, the tug-of-war between the MLM and RTD gradients, fine-tuning on the practice suite, and the similarity of the token embeddings.
- `electra_gdes.train`: The fastai `Learner` of RTD pretraining: step-based sampling, masking on the device, mixed precision, gradient clipping, the learning-rate schedule, atomic checkpoints with exact resume, and the CSV / neptune log."""

__version__ = "0.1.0"
