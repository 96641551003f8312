"""Pure functions that build Kubernetes objects from the API models: no I/O here."""
