"""Per-kind reconcilers: typed object -> children -> status. Handlers parse the object, call
these, and write the status and Events they return."""
