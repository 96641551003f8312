"""Hyperparameter search: the platform against a plain Optuna loop, on the local stack.

The same 40-trial TPE search (fixed seed, same space: a random forest on breast_cancer,
3-fold cross-validated) runs, side by side in each of 3 rounds:

- (i) as a TrainingJob with parallelism 1, (ii) with parallelism 2: the real operator,
  worker Pods, the S3 journal and MLflow; wall time from creating the TrainingJob to the
  end of its last trial (the trials' MLflow runs carry their end times);
- (iii) `study.optimize` in this process, each trial computed by the workers' own
  `search_objective.evaluate` (the same folds, pipeline, sampler and pruner settings as a
  worker): the floor. Its "fit" time is the sum of its trials' durations.

The per-trial platform overhead is (i)'s wall time minus the sum of its own trials'
durations, over the trials: the worker's start and its work between trials.

Then, in this process, the same search (same space, seed 7 and 40 trials, 5 folds) with the
median pruner against none, side by side (a trial of one, then a trial of the other), for
the trial compute it saves: the CPU time of the trials, which the other processes of a
shared machine inflate less than wall time. With a
pruner, a forest's trial reports its cross-validated score as its forests grow (8, 16, 32,
64 trees, then its own size), so the pruner can stop it after its first few trees; without
one, each fold's forest is fitted in one go. And the operator's RSS during a 200-trial
search.

Run: `.venv/bin/python -m bench.search.run`. The last line is one JSON object. Results
replace the `search` section of docs/benchmarks.md. `--pruning-only` runs the pruning
comparison alone (`--rounds` times, 3 by default, reporting the medians), without the
cluster and without touching docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from typing import Any

import optuna
import pandas as pd
from kubernetes import client
from mlflow import MlflowClient
from optuna.trial import TrialState
from sklearn.datasets import load_breast_cancer

from bench.sections import machine, replace_section
from bench.serving.procfs import PeakRss
from localkube import services, stack
from localkube.readiness import api_client
from localkube.testing import create_namespace, delete_namespace, wait_for
from mlcycle_contract.api.dataset import SplitSpec
from mlcycle_contract.api.learning import Metric, Task
from mlcycle_contract.api.search import SearchSpec, effective_space
from mlcycle_contract.api.trainingjob import TrainingJobSpec
from mlcycle_contract.environment import TAG_SEARCH_ROLE, TAG_SEARCH_STUDY
from mlcycle_trainer.search import sampler_for
from mlcycle_trainer.search_objective import evaluate, folds_for, most_steps, pruner_for
from mlcycle_trainer.search_space import suggest
from mlcycle_trainer.validation import Holdout, split

GROUP, VERSION = "mlcycle.dev", "v1alpha1"
ROUNDS, TRIALS, SEED, FOLDS = 3, 40, 7, 3
PRUNING_FOLDS = 5
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


@dataclass(frozen=True)
class InProcess:
    """A search in this process: its wall time, its trials' compute as the sum of their
    durations and as the CPU time they took (fits, scoring and the pruner's checks; the
    sampler's work left out), best value and pruned trials."""

    wall: float
    compute: float
    cpu: float
    best: float
    trials: int
    pruned_at: dict[int, int]  # step -> trials pruned there

    @property
    def pruned(self) -> int:
        return sum(self.pruned_at.values())


class InProcessSearch:
    """The search in this process, each trial computed by the workers' own `evaluate` (the
    same folds of the training rows, the Dataset's default holdout split left out, pipeline,
    sampler and pruner settings). `run` may be called trial by trial: the study and its
    seeded sampler carry on where they stopped."""

    def __init__(self, trials: int, pruner: str, folds: int) -> None:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        self.training = TrainingJobSpec.model_validate(spec(1, trials, pruner, folds))
        search: SearchSpec = self.training.search  # type: ignore[assignment]
        x_all, y_all = load_breast_cancer(return_X_y=True, as_frame=True)
        holdout = Holdout.resolve(SplitSpec(), self.training.validation, Task.CLASSIFICATION)
        x, _, y, _ = split(x_all, pd.Series(y_all), holdout)
        self.folds = folds_for(x, y, Task.CLASSIFICATION, Metric.ACCURACY, folds,
                               self.training.validation.seed)
        self.spaces = effective_space(search, self.training.candidate_algorithms)
        self.study = optuna.create_study(
            direction="maximize", sampler=sampler_for(search, self.spaces, 0),
            pruner=pruner_for(search, most_steps(self.training, self.spaces, self.folds)))
        self.wall = self.cpu = 0.0

    def objective(self, trial: optuna.Trial) -> float:
        algorithm, parameters = suggest(trial, self.spaces)
        started = time.process_time()
        try:
            return evaluate(trial, self.training, self.folds, algorithm, parameters, {})
        finally:
            self.cpu += time.process_time() - started

    def run(self, trials: int) -> None:
        started = time.perf_counter()
        self.study.optimize(self.objective, n_trials=trials)
        self.wall += time.perf_counter() - started

    def result(self) -> InProcess:
        trials = self.study.trials
        compute = sum((t.datetime_complete - t.datetime_start).total_seconds()
                      for t in trials if t.datetime_complete and t.datetime_start)
        pruned_at = Counter(t.last_step for t in trials
                            if t.state == TrialState.PRUNED and t.last_step is not None)
        return InProcess(self.wall, compute, self.cpu, float(self.study.best_value),
                         len(trials), dict(sorted(pruned_at.items())))


def in_process(trials: int, pruner: str, folds: int) -> InProcess:
    search = InProcessSearch(trials, pruner, folds)
    search.run(trials)
    return search.result()


@dataclass(frozen=True)
class PruningComparison:
    """The same search (space, seed, trials) without a pruner and with the median one.
    The saving is in CPU time, which other processes on the machine do not inflate."""

    plain: InProcess
    pruned: InProcess

    @property
    def saving(self) -> float:
        return 1 - self.pruned.cpu / self.plain.cpu


def compare_pruning(trials: int = TRIALS, folds: int = PRUNING_FOLDS) -> PruningComparison:
    """The two searches side by side, a trial of one then a trial of the other, so that the
    machine's load, which moves, weighs on both alike."""
    plain = InProcessSearch(trials, "none", folds)
    pruned = InProcessSearch(trials, "median", folds)
    for _ in range(trials):
        plain.run(1)
        pruned.run(1)
    return PruningComparison(plain.result(), pruned.result())


@dataclass(frozen=True)
class OnCluster:
    """A search as a TrainingJob: seconds from its creation to its last trial's end, the
    sum of its trials' durations (their MLflow runs' start to end), its best value."""

    wall: float
    trials: float
    best: float


def on_cluster(running: stack.Stack, objects: client.CustomObjectsApi, namespace: str,
               name: str, parallelism: int, trials: int = TRIALS) -> OnCluster:
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
    durations = sum(run.info.end_time - run.info.start_time for run in runs) / 1000
    return OnCluster(last_end - created, durations, float(status["bestTrial"]["value"]))


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
            p1 = on_cluster(running, objects, namespace, f"p1-{index}", 1)
            p2 = on_cluster(running, objects, namespace, f"p2-{index}", 2)
            floor = in_process(TRIALS, "none", FOLDS)
            rounds.append({"p1": p1.wall, "p1_trials": p1.trials, "p2": p2.wall,
                           "floor": floor.wall, "fit": floor.compute,
                           "best_p1": p1.best, "best_floor": floor.best})
            print(json.dumps(rounds[-1]))
        with stack.operator_process(running) as pid:  # a process, whose RSS procfs gives
            peak = PeakRss(pid, interval=1.0)
            peak.start()
            try:
                on_cluster(running, objects, namespace, "rss", 2, trials=200)
            finally:
                peak.stop()
        operator_rss_mib = peak.overall / 2**20
    finally:
        delete_namespace(running.cluster.kubeconfig, namespace, timeout=600)
    pruning = compare_pruning()

    def median(key: str) -> float:
        return statistics.median(r[key] for r in rounds)

    summary = {
        "p1_vs_inprocess": round(median("p1") / median("floor"), 3),
        "p2_vs_inprocess": round(median("p2") / median("floor"), 3),
        "best_gap": round(median("best_floor") - median("best_p1"), 4),
        "pruning_saving": round(pruning.saving, 3),
        "overhead_per_trial_s": round(statistics.median(
            (r["p1"] - r["p1_trials"]) / TRIALS for r in rounds), 3),
    }
    targets = [
        ("(i) / (iii) at most 1.3", summary["p1_vs_inprocess"] <= 1.3),
        ("(ii) / (iii) at most 0.8", summary["p2_vs_inprocess"] <= 0.8),
        ("best accuracy within 0.005 of (iii)", abs(summary["best_gap"]) <= 0.005),
        ("pruning saves at least 30% within 0.01 of the best",
         pruning.saving >= 0.3 and abs(pruning.plain.best - pruning.pruned.best) <= 0.01),
    ]
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
        f"which its trials {median('fit'):.1f} s |",
        f"| (i) / (iii), (ii) / (iii) | {summary['p1_vs_inprocess']}, "
        f"{summary['p2_vs_inprocess']} |",
        f"| best accuracy (iii) minus (i) | {summary['best_gap']} |",
        f"| per-trial platform overhead of (i): ((i) - the sum of its trials' durations) / "
        f"trials | {summary['overhead_per_trial_s']} s |",
        f"| median pruner vs none ({PRUNING_FOLDS} folds, in process): trial CPU time saved | "
        f"{summary['pruning_saving']:.0%} ({pruning.pruned.pruned} of {TRIALS} trials "
        f"pruned; best {pruning.pruned.best:.4f} vs {pruning.plain.best:.4f}) |",
        f"| operator peak RSS during a 200-trial search | {operator_rss_mib:.0f} MiB |",
        "",
        "Round by round (seconds; (i), (ii), (iii); then (i)/(iii) and (ii)/(iii) of the "
        "round): " + "; ".join(
            f"{r['p1']:.1f}, {r['p2']:.1f}, {r['floor']:.1f} "
            f"({r['p1'] / r['floor']:.2f}, {r['p2'] / r['floor']:.2f})" for r in rounds)
        + ". The table divides the medians. Issue 10's targets: " + "; ".join(
            f"{target}: {'met' if met else '**missed**'}" for target, met in targets) + ".",
    ]
    replace_section("search", "\n".join(lines))
    print("\n".join(lines))
    print(json.dumps(summary))


def describe(comparison: PruningComparison) -> str:
    plain, pruned = comparison.plain, comparison.pruned
    return (f"trial CPU {pruned.cpu:.1f} s pruned vs {plain.cpu:.1f} s plain "
            f"(saved {comparison.saving:.1%}; wall {pruned.compute:.1f} vs "
            f"{plain.compute:.1f} s); {pruned.pruned} of {pruned.trials} trials "
            f"pruned, by step {pruned.pruned_at}; best {pruned.best:.4f} vs {plain.best:.4f}")


def pruning_only(rounds: int) -> None:
    """The pruning comparison alone, in this process: no cluster, docs/benchmarks.md
    untouched. Prints each round, then the medians as one JSON object."""
    comparisons = []
    for index in range(rounds):
        comparisons.append(compare_pruning())
        print(f"round {index + 1}: {describe(comparisons[-1])}", flush=True)
    print(json.dumps({
        "pruning_saving": round(statistics.median(c.saving for c in comparisons), 3),
        "best_gap": round(statistics.median(c.plain.best - c.pruned.best
                                            for c in comparisons), 4),
        "pruned_trials": statistics.median(c.pruned.pruned for c in comparisons),
        "rounds": rounds,
    }))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pruning-only", action="store_true",
                        help="only the in-process comparison of the median pruner with none")
    parser.add_argument("--rounds", type=int, default=ROUNDS,
                        help="rounds of --pruning-only, whose median is reported")
    arguments = parser.parse_args()
    if arguments.pruning_only:
        pruning_only(arguments.rounds)
    else:
        main()
