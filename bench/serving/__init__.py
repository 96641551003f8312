"""`make bench-serving`: our model server side by side with MLflow's and KServe's.

Modules: `models` trains and saves the two models, `servers` describes and runs the
three servers (one at a time), `procfs` samples a process tree's memory, `load` drives
wrk, `results` derives ratios and targets, `report` renders the `serving` section of
docs/benchmarks.md, `kserve_env` keeps KServe's own virtualenv, `run` orchestrates.
`kserve_sklearn` is the KServe server script; it runs in KServe's virtualenv.
`options` then runs our server against itself (workers, HTTP stack) and renders the
`serving-options` section.
"""
