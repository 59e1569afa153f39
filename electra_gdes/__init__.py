"""ELECTRA-style replaced token detection with DeBERTaV3 gradient-disentangled embedding sharing (GDES), pretrained with fastai and proven on GLUE

electra_gdes pretrains language models by **replaced token detection** (RTD): a small generator fills masked positions
with its own Gumbel-max samples, and the discriminator learns which tokens were replaced. The embeddings of the two are
shared in one of three ways: `gdes` (DeBERTaV3's gradient-disentangled sharing, E_D = sg(E_G) + E_delta), `es`
(ELECTRA's tying) or `nes` (none). Backbones are the Hugging Face ELECTRA (small, base, large) and DeBERTa-v3 (xsmall,
small, base, large) models, BERT, RoBERTa and ModernBERT from scratch at ELECTRA's sizes, any encoder continued from
its released checkpoint, and a `tiny` preset that trains on a laptop CPU in minutes. The pretrained
discriminator is then fine-tuned on **GLUE** with ELECTRA's recipe (layer-wise learning-rate decay, seeded runs, best-run
selection) and written out as the 11 files of a leaderboard submission.

## Quick start

`electra-pretrain --time_budget 10m` fetches the default corpus (233 State of the Union addresses, public domain),
caches the ELECTRA examples, pretrains the `tiny` ELECTRA preset with GDES for as many steps as ten minutes buy and
exports a Hugging Face discriminator;
`electra-finetune` fine-tunes it on the GLUE tasks:

```bash
electra-pretrain --time_budget 10m               # tiny ELECTRA, GDES, on the default corpus, ten minutes
electra-pretrain --list_presets                   # every backbone / size with its recipe
electra-pretrain --size small --precision bf16    # ELECTRA-small as published, on a GPU
electra-pretrain --backbone modernbert --size small     # a ModernBERT from scratch, ELECTRA's recipe
electra-pretrain --init_discriminator DIR_OR_HUB_NAME   # continue a released encoder (BERT, RoBERTa, DeBERTa...)
electra-finetune --checkpoint checkpoints/pretrain/electra-tiny-gdes/discriminator --glue_dir GLUE
```

The same steps are in Python, in the walkthrough notebooks [Pretrain](Pretrain.ipynb) and
[Fine-tune on GLUE](Finetune_GLUE.ipynb).

Modules:

- `electra_gdes.accumulation`: One optimizer step of several micro-batches, written once for pretraining and fine-tuning: the batch split into rows, no DDP all-reduce before the last micro-batch, backward outside autocast.
- `electra_gdes.budget`: `--time_budget 10m|6h|2d`: the steps of a run are decided from the measured speed of its first steps, so that the whole warmup-and-decay schedule ends on time; the decision is recorded and a resumed run keeps it.
- `electra_gdes.checkpoint`: Checkpoints written atomically with their SHA-256, verified before use, the RNG states, and exact resume into a learner.
- `electra_gdes.cli`: Every config dataclass as a command line: an option per field with its preset's default in the help, a `--config` file under the options, `--resume` over a run's saved settings, the presets table, and trackers checked before anything is written.
- `electra_gdes.compare`: Several pretraining runs' curves overlaid in one figure (the training log and the held-out evaluations), and several GLUE sweeps joined into one table and bar plot; the `electra-compare` command.
- `electra_gdes.config`: One config object per job, with presets per backbone and size, shared by the notebooks and the command-line scripts.
- `electra_gdes.continued`: `--init_discriminator` alone: RTD with GDES / ES / NES continued from a released BERT, RoBERTa, ModernBERT, ELECTRA or DeBERTa checkpoint, the generator built from it; and the same model from scratch in any of these architectures.
- `electra_gdes.data`: Corpora, tokenizers, the ELECTRA and DeBERTa example builders, and the Arrow cache of pretraining examples.
- `electra_gdes.device`: The device a process trains on and the precision it trains in: bf16 autocast wherever the device multiplies bf16 natively, fp32 elsewhere, with fastai's mixed-precision callback on any device.
- `electra_gdes.distributed`: Data-parallel pretraining and fine-tuning with `torchrun` and PyTorch DDP, on one machine or several: rank 0 builds the data and writes everything, every rank trains on its own shard, and checkpoints resume with any number of processes.
- `electra_gdes.encoders`: What the kit needs to know about each Hugging Face encoder it pretrains: its embedding tables by role, its MLM head, its token types, its position limit, a replaced-token-detection discriminator on top of it, and tiny offline checkpoints for tests.
- `electra_gdes.export`: Everything that leaves the kit: Hugging Face folders with their model cards (the pretrained discriminator and generator, the fine-tuned GLUE classifiers, the SQuAD readers), the export of any pretraining checkpoint (`electra-export`), and the upload of exports to the hub.
- `electra_gdes.files`: Writing files and folders so that a fault (a full disk, a read-only or unwritable folder) leaves every earlier file as it was, no temporary file behind, and one message that names the path and the fix.
- `electra_gdes.finetune`: `run_glue`, the whole fine-tuning job of a `FinetuneConfig` (the sweep, the summary, the best runs exported, the submission), and the `electra-finetune` command.
- `electra_gdes.glue_data`: The nine GLUE tasks from the Hugging Face hub, from the official GLUE download, or from an offline synthetic practice suite, all in one format; BERT-style pair truncation, `double_unordered` and tokenization.
- `electra_gdes.glue_finetune`: The ELECTRA fine-tuning recipe: the simultaneous warmup/decay schedule, the data, seeded runs with a results file, gradient accumulation, best-run selection and the selected runs' test predictions.
- `electra_gdes.glue_metrics`: The GLUE metrics of every task, the constant-answer floor, and the summary table of a sweep beside the published scores.
- `electra_gdes.glue_model`: ELECTRA's head on a pretrained discriminator, the checks a checkpoint must pass, layer-wise learning-rate decay, run folders, and the classes that transformers loads from an export.
- `electra_gdes.glue_submission`: The 11 files the GLUE leaderboard expects, written atomically with their zip, and a validator (also a command) that checks a submission folder against the test files.
- `electra_gdes.logs`: The step counter of a run, its CSV log (one row every `log_every` steps), the one-line-per-row stdout of a run whose output goes to a file, and fastai's progress bar without its per-step device sync.
- `electra_gdes.long_runs`: Surviving preemption (SIGTERM / SIGINT write a checkpoint, then the run exits cleanly) and non-finite steps (skipped, counted, and a clear stop when they keep coming).
- `electra_gdes.model`: Generator and discriminator from HF configs (ELECTRA, DeBERTaV3), GDES / ES / NES embedding sharing.
- `electra_gdes.optim`: Adam without bias correction, decoupled weight decay that skips LayerNorm and biases, and the ELECTRA and DeBERTa schedules, as fastai pieces.
- `electra_gdes.pretrain`: `run_pretraining`, the whole job of a `PretrainConfig` (its run folder kept safe), and the `electra-pretrain` command.
- `electra_gdes.rtd`: Masking, generator sampling, RTD labels, the combined loss and the metrics of ELECTRA / DeBERTaV3 pretraining.
- `electra_gdes.rtd_eval`: Every `eval_every` steps, the discriminator and generator on the held-out examples with fixed masks and sampling noise (ROC-AUC, average precision, precision / recall / F1, the all-original baseline, MLM loss and accuracy), the tug-of-war between the MLM and RTD gradients on the embeddings, and the plot of a run.
- `electra_gdes.run_lock`: One job at a time in a run folder (or a fine-tuning group): a lock file beside the folder, taken before anything is written, released on exit, taken over from a job that died.
- `electra_gdes.sharing_study`: The runs, the embedding-similarity analysis, the plots and the fine-tuning of the study that `Sharing_Study.ipynb` runs: one tiny config per embedding-sharing mode under one budget.
- `electra_gdes.squad`: `run_squad`, the whole SQuAD fine-tuning job of a `SquadConfig`, and the `electra-squad` command.
- `electra_gdes.squad_data`: SQuAD 1.1 / 2.0 from the official JSON files, the Hugging Face hub or an offline synthetic practice set, every question checked before anything trains; EM and F1 exactly as the official evaluation scripts compute them.
- `electra_gdes.squad_finetune`: Extractive question answering on a pretrained discriminator: overlapping windows with character offsets, the span head and its loss, layer-wise decayed fine-tuning, n-best span search, the SQuAD 2.0 no-answer score and threshold, seeded runs, best-run selection and an export that `pipeline('question-answering', trust_remote_code=True)` loads.
- `electra_gdes.trackers`: `--log csv,tensorboard,wandb,neptune-offline`: TensorBoard, Weights & Biases and neptune trackers that get every row of `log.csv` (and the held-out rows) at the global step, with the run's config once, all their files in the run directory.
- `electra_gdes.train`: The fastai `Learner` of RTD pretraining: step-based sampling, masking on the device, mixed precision, gradient clipping, the learning-rate schedule, gradient accumulation and DeBERTaV3's decoupled training, with the log (`04a_logs`), the trackers of `--log` (`04b_trackers`) and the checkpoints (`04c_checkpoint`) as its callbacks."""

__version__ = "0.1.0"
