"""Per-kind reconcilers: spec -> children -> status. Handlers call these and nothing else."""
