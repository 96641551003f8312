"""The mlcycle trainer: ingests Datasets and trains models inside Kubernetes Jobs.

Runs as `python -m mlcycle_trainer ingest|train` in the trainer image; it never imports
the operator package; what it reads and writes is `mlcycle_contract`.
"""
