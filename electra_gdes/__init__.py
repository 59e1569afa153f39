"""ELECTRA-style replaced token detection with DeBERTaV3 gradient-disentangled embedding sharing (GDES), pretrained with fastai and proven on GLUE

Modules:

- `electra_gdes.train`: The fastai `Learner` of RTD pretraining: step-based sampling, masking on the device, mixed precision, gradient clipping, the learning-rate schedule, atomic checkpoints with exact resume, and the CSV / neptune log."""

__version__ = "0.1.0"
