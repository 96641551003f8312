"""Hyperparameter search: the platform against a plain Optuna loop, on the local stack.

The same 40-trial TPE search (fixed seed, same space: a random forest on breast_cancer,
3-fold cross-validated) runs, side by side in each of 3 rounds:

- (i) as a TrainingJob with parallelism 1, (ii) with parallelism 2: the real operator,
  worker Pods, the S3 journal and MLflow; wall time from creating the TrainingJob to the
  end of its last trial (the trials' MLflow runs carry their end times);
- (iii) `study.optimize` in this process, with the trainer's own objective code (the same
  folds, pipeline and sampler settings as a worker): the floor.

Then, in this process, the same search with the median pruner against none (5 folds), for
the trial compute it saves; and the operator's RSS during a 200-trial search.

Run: `.venv/bin/python -m bench.search.run`. The last line is one JSON object. Results
replace the `search` section of docs/benchmarks.md.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from typing import Any

import optuna
import pandas as pd
from kubernetes import client
from mlflow import MlflowClient
from sklearn.datasets import load_breast_cancer

from bench.sections import machine, replace_section
from bench.serving.procfs import PeakRss
from localkube import services, stack
from localkube.readiness import api_client
from localkube.testing import create_namespace, delete_namespace, wait_for
from mlcycle_contract.api.algorithms import ALGORITHMS
from mlcycle_contract.api.dataset import SplitSpec
from mlcycle_contract.api.learning import Metric, Task
from mlcycle_contract.api.search import SearchSpec, effective_space
from mlcycle_contract.api.trainingjob import TrainingJobSpec
from mlcycle_contract.environment import TAG_SEARCH_ROLE, TAG_SEARCH_STUDY
from mlcycle_trainer.algorithms import build_estimator
from mlcycle_trainer.preprocessing import build_pipeline
from mlcycle_trainer.search import folds_for, pruner_for, sampler_for
from mlcycle_trainer.search_space import suggest
from mlcycle_trainer.validation import Holdout, split

GROUP, VERSION = "mlcycle.dev", "v1alpha1"
ROUNDS, TRIALS, SEED, FOLDS = 3, 40, 7, 3
SPACE = {"random_forest_classifier": {
    "n_estimators": {"type": "int", "low": 60, "high": 120},
    "max_depth": {"type": "int", "low": 2, "high": 12},
    "min_samples_leaf": {"type": "int", "low": 1, "high": 10},
    "max_features": {"type": "float", "low": 0.2, "high": 1.0},
}}


def spec(parallelism: int, trials: int = TRIALS, pruner: str = "none",
         folds: int = FOLDS) -> dict[str, Any]:
    return {"datasetRef": {"name": "cancer"}, "algorithm": "random_forest_classifier",
            "validation": {"folds": folds},
            "search": {"space": SPACE, "maxTrials": trials, "parallelism": parallelism,
                       "seed": SEED, "pruner": pruner}}


def in_process(trials: int, pruner: str, folds: int) -> tuple[float, float, float]:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    """(wall seconds, fit seconds, best value) of the search in this process."""
    training = TrainingJobSpec.model_validate(spec(1, trials, pruner, folds))
    search: SearchSpec = training.search  # type: ignore[assignment]
    # The worker's objective: the folds of the training rows (the Dataset's default holdout
    # split left out), seeded as the TrainingJob's validation is.
    x_all, y_all = load_breast_cancer(return_X_y=True, as_frame=True)
    holdout = Holdout.resolve(SplitSpec(), training.validation, Task.CLASSIFICATION)
    x, _, y, _ = split(x_all, pd.Series(y_all), holdout)
    seed = training.validation.seed
    fold_rows = folds_for(x, y, Task.CLASSIFICATION, Metric.ACCURACY, folds, seed)
    spaces = effective_space(search, training.candidate_algorithms)
    fitted_for = [0.0]

    def objective(trial: optuna.Trial) -> float:
        algorithm, parameters = suggest(trial, spaces)
        pipeline = build_pipeline(build_estimator(ALGORITHMS[algorithm], parameters, seed), x,
                                  training.preprocessing.scaling,
                                  training.preprocessing.one_hot_encode)
        scores = []
        for step, (train_rows, test_rows) in enumerate(fold_rows.splits):
            started = time.perf_counter()
            fitted = pipeline.fit(x.iloc[train_rows], y.iloc[train_rows])
            fitted_for[0] += time.perf_counter() - started
            scores.append(float(fold_rows.scorer(fitted, x.iloc[test_rows], y.iloc[test_rows])))
            trial.report(sum(scores) / len(scores), step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return sum(scores) / len(scores)

    study = optuna.create_study(direction="maximize", sampler=sampler_for(search, spaces, 0),
                                pruner=pruner_for(search, len(fold_rows.splits)))
    started = time.perf_counter()
    study.optimize(objective, n_trials=trials)
    return time.perf_counter() - started, fitted_for[0], float(study.best_value)


def on_cluster(running: stack.Stack, objects: client.CustomObjectsApi, namespace: str,
               name: str, parallelism: int, trials: int = TRIALS) -> tuple[float, float]:
    """(seconds from creation to the last trial's end, best value) of a TrainingJob."""
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "TrainingJob",
            "metadata": {"name": name}, "spec": {
                **spec(parallelism, trials),
                # Model names are a namespace's own: a fresh one per benchmark namespace.
                "registry": {"modelName": f"{name}-{namespace}"}}}
    created = time.time()
    objects.create_namespaced_custom_object(GROUP, VERSION, namespace, "trainingjobs", body)

    def finished() -> dict[str, Any] | None:
        status = objects.get_namespaced_custom_object(
            GROUP, VERSION, namespace, "trainingjobs", name).get("status") or {}
        return status if status.get("phase") in ("Succeeded", "Failed") else None

    status = wait_for(f"{name} to finish", finished, timeout=1800, interval=2)
    assert status["phase"] == "Succeeded", status
    runs = MlflowClient(tracking_uri=running.services.mlflow_url).search_runs(
        [status["mlflow"]["experimentId"]],
        filter_string=f"tags.`{TAG_SEARCH_STUDY}` = '{status['study']}' and "
        f"tags.`{TAG_SEARCH_ROLE}` = 'trial'", max_results=1000)
    assert len(runs) == trials, len(runs)
    last_end = max(run.info.end_time for run in runs) / 1000
    return last_end - created, float(status["bestTrial"]["value"])


def main() -> None:
    running = stack.up()
    # The trials' MLflow runs are read as the cluster's MLflow admin (basic auth).
    os.environ.update(services.admin_environment(running.paths))
    k8s = api_client(running.cluster.kubeconfig)
    objects = client.CustomObjectsApi(k8s)
    namespace = create_namespace(running.cluster.kubeconfig, prefix="bench")
    rounds: list[dict[str, float]] = []
    try:
        objects.create_namespaced_custom_object(GROUP, VERSION, namespace, "datasets", {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "Dataset",
            "metadata": {"name": "cancer"},
            "spec": {"source": {"builtin": "breast_cancer"}, "target": "target"}})
        wait_for("the Dataset", lambda: (objects.get_namespaced_custom_object(
            GROUP, VERSION, namespace, "datasets", "cancer").get("status") or {}).get(
            "phase") == "Ready", timeout=600, interval=1)
        for index in range(ROUNDS):
            p1, best_p1 = on_cluster(running, objects, namespace, f"p1-{index}", 1)
            p2, _ = on_cluster(running, objects, namespace, f"p2-{index}", 2)
            floor, fit, best_floor = in_process(TRIALS, "none", FOLDS)
            rounds.append({"p1": p1, "p2": p2, "floor": floor, "fit": fit,
                           "best_p1": best_p1, "best_floor": best_floor})
            print(json.dumps(rounds[-1]))
        pid = stack.operator_pid(running.paths)
        assert pid is not None
        peak = PeakRss(pid, interval=1.0)
        peak.start()
        try:
            on_cluster(running, objects, namespace, "rss", 2, trials=200)
        finally:
            peak.stop()
        operator_rss_mib = peak.overall / 2**20
    finally:
        delete_namespace(running.cluster.kubeconfig, namespace, timeout=600)
    _, plain_fit, plain_best = in_process(TRIALS, "none", 5)
    _, pruned_fit, pruned_best = in_process(TRIALS, "median", 5)

    def median(key: str) -> float:
        return statistics.median(r[key] for r in rounds)

    summary = {
        "p1_vs_inprocess": round(median("p1") / median("floor"), 3),
        "p2_vs_inprocess": round(median("p2") / median("floor"), 3),
        "best_gap": round(median("best_floor") - median("best_p1"), 4),
        "pruning_saving": round(1 - pruned_fit / plain_fit, 3),
        "overhead_per_trial_s": round((median("p1") - median("fit")) / TRIALS, 3),
    }
    lines = [
        "## Hyperparameter search (`python -m bench.search.run`)",
        "",
        f"Machine: {machine()}. A {TRIALS}-trial TPE search (seed {SEED}) over a random "
        f"forest on breast_cancer, {FOLDS}-fold cross-validated; median of {ROUNDS} rounds, "
        "each running (i), (ii) and (iii) side by side.",
        "",
        "| figure | value |",
        "| --- | --- |",
        f"| (i) TrainingJob, parallelism 1: creation to last trial's end | "
        f"{median('p1'):.1f} s |",
        f"| (ii) TrainingJob, parallelism 2 | {median('p2'):.1f} s |",
        f"| (iii) `study.optimize` in one process (the floor) | {median('floor'):.1f} s, of "
        f"which fits {median('fit'):.1f} s |",
        f"| (i) / (iii), (ii) / (iii) | {summary['p1_vs_inprocess']}, "
        f"{summary['p2_vs_inprocess']} |",
        f"| best accuracy (iii) minus (i) | {summary['best_gap']} |",
        f"| per-trial platform overhead of (i): (wall - fit) / trials | "
        f"{summary['overhead_per_trial_s']} s |",
        f"| median pruner vs none (5 folds, in process): trial compute saved | "
        f"{summary['pruning_saving']:.0%} (best {pruned_best:.4f} vs {plain_best:.4f}) |",
        f"| operator peak RSS during a 200-trial search | {operator_rss_mib:.0f} MiB |",
    ]
    replace_section("search", "\n".join(lines))
    print("\n".join(lines))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
