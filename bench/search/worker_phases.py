"""A search worker's own costs, code trees side by side, without a cluster.

    python -m bench.search.worker_phases --minio PATH --tree base=DIR --tree new=DIR

Starts a throwaway MinIO and `mlflow server` on 127.0.0.1 (SQLite, artifacts proxied to
MinIO, basic auth as the cluster runs it), ingests the builtin breast_cancer Dataset once,
then runs `make bench-search`'s search (`bench.search.run`: 40 TPE trials, seed 7, a random
forest, 3 folds) as `python -m mlcycle_trainer search` with the environment the operator
gives a worker Pod: with parallelism 1 (one process) and 2 (two processes at once, indexes
0 and 1, as an Indexed Job's Pods), each on a study of its own. `--runs` rounds, each first
running the in-process floor (`bench.search.run.in_process`, `make bench-search`'s (iii)),
then every tree, in a rotating order (so a noisy neighbour hits them alike).

Reported per tree, medians in seconds, all counted from the moment the processes start
(what a Pod's start adds, the image and the scheduling, is left out):

- the processes' wall time, to the last one's exit;
- the first trial's start and the last trial's end (their MLflow runs' times, as
  `make bench-search` reads them);
- the platform time per trial of parallelism 1: the last trial's end minus the floor's
  trials (the same 40 configurations: the sampler is seeded), over the trials, in total and
  from the first trial's start (without the worker's start-up);
- the last trial's end over the floor's wall time: `make bench-search`'s ratios, less a
  Pod's start.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from mlflow import MlflowClient

from bench.search.run import FOLDS, TRIALS, in_process, spec
from bench.training.trainer_phases import (
    DATA_BUCKET,
    dataset_environment,
    median_table,
    run_trainer,
    services,
    trainer_environment,
    tree_arguments,
)
from mlcycle_contract import environment as contract

OWNER = "cancer-search"
EXPERIMENT = "worker-phases"
TIMEOUT_SECONDS = 900


@dataclass(frozen=True)
class SearchRun:
    """One search by `parallelism` worker processes, in seconds from their start."""

    wall: float
    first_trial_start: float
    last_trial_end: float
    best: float


def run_search(tree: Path, parallelism: int, env: dict[str, str], workdir: Path,
               study: str) -> SearchRun:
    """The search's workers, started at once; their trials read back from MLflow."""
    worker_env = {
        **env,
        contract.TRAINING_SPEC.name: json.dumps(spec(parallelism)),
        contract.SEARCH_STUDY.name: study,
        contract.SEARCH_STUDY_URI.name:
            f"s3://{DATA_BUCKET}/datasets/default/searches/{OWNER}/{study}/",
        contract.SEARCH_DEADLINE.name: "",
    }
    started_at, started = time.time(), time.perf_counter()
    workers = []
    for index in range(parallelism):
        message_file = workdir / f"{study}-{index}.json"
        log = open(workdir / f"{study}-{index}.log", "wb")  # noqa: SIM115 closed below
        workers.append((subprocess.Popen(
            [sys.executable, "-m", "mlcycle_trainer", contract.COMMAND_SEARCH],
            env=trainer_environment(tree, workdir, message_file, {
                **worker_env, contract.JOB_COMPLETION_INDEX.name: str(index)}),
            cwd=workdir, stdout=log, stderr=subprocess.STDOUT), log))
    for process, log in workers:
        code = process.wait(timeout=TIMEOUT_SECONDS)
        log.close()
        if code != 0:
            raise RuntimeError(f"a worker of {study} ({tree}) exited {code}:\n"
                               + Path(log.name).read_text()[-3000:])
    wall = time.perf_counter() - started
    client = MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name(EXPERIMENT)
    assert experiment is not None
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`{contract.TAG_SEARCH_STUDY}` = '{study}' and "
        f"tags.`{contract.TAG_SEARCH_ROLE}` = 'trial'", max_results=1000)
    if len(runs) != TRIALS or any(run.info.status != "FINISHED" for run in runs):
        raise RuntimeError(f"{study} ({tree}): {len(runs)} trial runs, statuses "
                           f"{sorted({run.info.status for run in runs})}")
    return SearchRun(
        wall=wall,
        first_trial_start=min(run.info.start_time for run in runs) / 1000 - started_at,
        last_trial_end=max(run.info.end_time for run in runs) / 1000 - started_at,
        best=max(float(run.data.metrics["accuracy"]) for run in runs))


def figures(p1: SearchRun, p2: SearchRun, floor_wall: float, floor_fit: float,
            ) -> dict[str, float]:
    return {
        "p1 wall": p1.wall,
        "p1 first trial start": p1.first_trial_start,
        "p1 last trial end": p1.last_trial_end,
        "p1 platform/trial": (p1.last_trial_end - floor_fit) / TRIALS,
        "p1 platform/trial after start": (p1.last_trial_end - p1.first_trial_start
                                          - floor_fit) / TRIALS,
        "p1 last end / floor": p1.last_trial_end / floor_wall,
        "p1 best accuracy": p1.best,
        "p2 wall": p2.wall,
        "p2 first trial start": p2.first_trial_start,
        "p2 last trial end": p2.last_trial_end,
        "p2 last end / floor": p2.last_trial_end / floor_wall,
        "floor wall": floor_wall,
        "floor trials": floor_fit,
    }


def main() -> None:
    arguments, trees = tree_arguments(__doc__)
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    with tempfile.TemporaryDirectory(prefix="worker-phases-") as directory:
        root = Path(directory)
        with services(arguments.minio, root, basic_auth=True) as env:
            # The bench's MLflow client reads the trials as the workers' admin.
            os.environ.update({key: value for key, value in env.items()
                               if key.startswith("MLFLOW_TRACKING_")})
            dataset_spec = {"source": {"builtin": "breast_cancer"}, "target": "target"}
            ingested, _ = run_trainer(next(iter(trees.values())), contract.COMMAND_INGEST, {
                **env, contract.OWNER_NAME.name: "cancer",
                contract.DATASET_SPEC.name: json.dumps(dataset_spec)}, root)
            search_env = {
                **env,
                contract.OWNER_NAME.name: OWNER,
                contract.MLFLOW_EXPERIMENT_NAME.name: EXPERIMENT,
                **dataset_environment("cancer", ingested),
            }
            names = list(trees)
            for round_number in range(arguments.runs):
                floor = in_process(TRIALS, "none", FOLDS)
                print(f"round {round_number + 1} floor: {floor.wall:.2f} s, trials "
                      f"{floor.compute:.2f} s, best {floor.best:.4f}", flush=True)
                shift = round_number % len(names)
                for name in names[shift:] + names[:shift]:
                    searches = {
                        parallelism: run_search(
                            trees[name], parallelism, search_env, root,
                            f"study-{name}-{round_number}-p{parallelism}-"
                            f"{secrets.token_hex(3)}")
                        for parallelism in (1, 2)}
                    runs[name].append(figures(searches[1], searches[2], floor.wall,
                                              floor.compute))
                    print(f"round {round_number + 1} {name}: "
                          + json.dumps({key: round(value, 3)
                                        for key, value in runs[name][-1].items()}), flush=True)
    print(median_table(runs))


if __name__ == "__main__":
    main()
