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

- `electra_gdes.compare`: Several pretraining runs' curves overlaid in one figure (the training log and the held-out evaluations), and several GLUE sweeps joined into one table and bar plot; the `electra-compare` command.
- `electra_gdes.config`: One config object per job, with presets per backbone and size, shared by the notebooks and the command-line scripts.
- `electra_gdes.data`: Corpora, tokenizers, the ELECTRA and DeBERTa example builders, and the Arrow cache of pretraining examples.
- `electra_gdes.distributed`: Data-parallel pretraining and fine-tuning with `torchrun` and PyTorch DDP, on one machine or several: rank 0 builds the data and writes everything, every rank trains on its own shard, and checkpoints resume with any number of processes.
- `electra_gdes.files`: Writing files and folders so that a fault (a full disk, a read-only or unwritable folder) leaves every earlier file as it was, no temporary file behind, and one message that names the path and the fix.
- `electra_gdes.finetune`: Fine-tune the discriminator on every GLUE task, pick the best runs and write the test submission; then the `electra-finetune` script.
- `electra_gdes.glue_data`: The nine GLUE tasks from the Hugging Face hub, from the official GLUE download, or from an offline synthetic practice suite, all in one format; BERT-style pair truncation, `double_unordered` and tokenization.
- `electra_gdes.glue_finetune`: The ELECTRA fine-tuning recipe: the classification head, layer-wise learning-rate decay, the simultaneous warmup/decay schedule, GLUE metrics, seeded runs with a results file, best-run selection, the summary table and test predictions.
- `electra_gdes.glue_submission`: The 11 files the GLUE leaderboard expects, written atomically with their zip, and a validator (also a command) that checks a submission folder against the test files.
- `electra_gdes.long_runs`: Surviving preemption (SIGTERM / SIGINT write a checkpoint, then the run exits cleanly) and non-finite steps (skipped, counted, and a clear stop when they keep coming).
- `electra_gdes.model`: Generator and discriminator from HF configs (ELECTRA, DeBERTaV3), GDES / ES / NES embedding sharing, HF export.
- `electra_gdes.optim`: Adam without bias correction, decoupled weight decay that skips LayerNorm and biases, and the ELECTRA and DeBERTa schedules, as fastai pieces.
- `electra_gdes.pretrain`: Replaced token detection with GDES / ES / NES, step by step on one batch, then the `electra-pretrain` script.
- `electra_gdes.rtd`: Masking, generator sampling, RTD labels, the combined loss and the metrics of ELECTRA / DeBERTaV3 pretraining.
- `electra_gdes.rtd_eval`: Every `eval_every` steps, the discriminator and generator on the held-out examples with fixed masks and sampling noise (ROC-AUC, average precision, precision / recall / F1, the all-original baseline, MLM loss and accuracy), the tug-of-war between the MLM and RTD gradients on the embeddings, and the plot of a run.
- `electra_gdes.run_lock`: One job at a time in a run folder (or a fine-tuning group): a lock file beside the folder, taken before anything is written, released on exit, taken over from a job that died.
- `electra_gdes.sharing_study`: The three embedding-sharing modes trained under the same budget, data and seed: held-out RTD, the tug-of-war between the MLM and RTD gradients, fine-tuning on the practice suite, and the similarity of the token embeddings.
- `electra_gdes.squad_cli`: SQuAD 1.1 / 2.0 from a pretrained discriminator, end to end: the published settings per size, one question through the pipeline, the sweep; then the `electra-squad` script.
- `electra_gdes.squad_data`: SQuAD 1.1 / 2.0 from the official JSON files, the Hugging Face hub or an offline synthetic practice set, every question checked before anything trains; EM and F1 exactly as the official evaluation scripts compute them.
- `electra_gdes.squad_finetune`: Extractive question answering on a pretrained discriminator: overlapping windows with character offsets, the span head and its loss, layer-wise decayed fine-tuning, n-best span search, the SQuAD 2.0 no-answer score and threshold, seeded runs, best-run selection and an export that `pipeline('question-answering', trust_remote_code=True)` loads.
- `electra_gdes.trackers`: `--log csv,tensorboard,wandb,neptune-offline`: TensorBoard, Weights & Biases and neptune trackers that get every row of `log.csv` (and the held-out rows) at the global step, with the run's config once, all their files in the run directory.
- `electra_gdes.train`: The fastai `Learner` of RTD pretraining: step-based sampling, masking on the device, mixed precision, gradient clipping, the learning-rate schedule, atomic checkpoints with exact resume, and the CSV log (and the trackers of `--log`)."""

__version__ = "0.1.0"
