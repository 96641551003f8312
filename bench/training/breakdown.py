"""Where a training run's end-to-end time goes: the moments the benchmark saw on the cluster
(watch events of the TrainingJob, its Job and its Pod) joined with the trainer's own phases
(`TrainerTimings`, from its termination message), as consecutive stages that add up to the
run's end-to-end time. All moments are wall-clock seconds of the one machine (the trainer
runs on the same kernel clock)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from mlcycle_contract.results import TrainerTimings


@dataclass(frozen=True)
class RunTimeline:
    """One TrainingJob's run, from its creation to the Succeeded phase seen."""

    created: float  # just before the create call
    job_created: float
    pod_created: float
    pod_scheduled: float  # spec.nodeName set
    container_terminated: float
    succeeded: float
    trainer: TrainerTimings

    @property
    def end_to_end(self) -> float:
        return self.succeeded - self.created

    @property
    def trainer_ended(self) -> float:
        """When the trainer had its result (its last phase's end)."""
        return self.trainer.process_started + sum(self.trainer.phases.values())


def stages(run: RunTimeline) -> list[tuple[str, float]]:
    """Consecutive (stage, seconds): platform stages around the trainer's phases; their sum is
    the end-to-end time."""
    return [
        ("operator: TrainingJob created -> Job created", run.job_created - run.created),
        ("Job controller: Job -> Pod created", run.pod_created - run.job_created),
        ("scheduler: Pod created -> bound to the node", run.pod_scheduled - run.pod_created),
        ("kubelet: Pod bound -> trainer process started (sandbox, network, container)",
         run.trainer.process_started - run.pod_scheduled),
        *((f"trainer: {phase}", seconds) for phase, seconds in run.trainer.phases.items()),
        ("trainer's result -> container seen terminated (termination message, interpreter "
         "exit, kubelet noticing)", run.container_terminated - run.trainer_ended),
        # The operator reads the end from the Pod: the Job controller's Complete, a couple
        # of seconds later, is no longer on the way.
        ("operator: container seen terminated -> TrainingJob Succeeded",
         run.succeeded - run.container_terminated),
    ]


def median_stages(runs: list[RunTimeline]) -> list[tuple[str, float]]:
    """Each stage's median over the runs, in the order the stages ran; a stage some run did
    not have (a phase) counts 0 s in that run."""
    per_run = [dict(stages(run)) for run in runs]
    names: list[str] = []
    for run in runs:
        names += [name for name, _ in stages(run) if name not in names]
    return [(name, statistics.median(seconds.get(name, 0.0) for seconds in per_run))
            for name in names]


def breakdown_table(runs: list[RunTimeline], fit_seconds: list[float]) -> list[str]:
    """Markdown rows: every stage's median, then the median end-to-end time and overhead."""
    overheads = [run.end_to_end - fit for run, fit in zip(runs, fit_seconds, strict=True)]
    rows = ["| stage | median s |", "| --- | --- |"]
    rows += [f"| {name} | {seconds:.2f} |" for name, seconds in median_stages(runs)]
    rows += [
        f"| **end to end** | **{statistics.median(r.end_to_end for r in runs):.2f}** |",
        f"| **platform overhead (end to end minus fit)** | "
        f"**{statistics.median(overheads):.2f}** |",
    ]
    return rows
