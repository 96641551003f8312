"""The training benchmark's breakdown: consecutive stages that add up to the end-to-end time."""

from __future__ import annotations

import pytest

from bench.training.breakdown import RunTimeline, breakdown_table, median_stages, stages
from mlcycle_contract.results import TrainerTimings


def timeline(offset: float = 0.0, fit: float = 0.1) -> RunTimeline:
    return RunTimeline(
        created=offset + 0.0, job_created=offset + 0.05, pod_created=offset + 0.1,
        pod_scheduled=offset + 0.2, container_terminated=offset + 5.0,
        succeeded=offset + 5.2,
        trainer=TrainerTimings(process_started=offset + 1.0,
                               phases={"imports": 2.0, "fit": fit, "register": 1.0}),
    )


def test_the_stages_add_up_to_the_end_to_end_time() -> None:
    run = timeline()
    seconds = dict(stages(run))
    assert sum(seconds.values()) == pytest.approx(run.end_to_end) == pytest.approx(5.2)
    assert seconds["kubelet: Pod bound -> trainer process started (sandbox, network, container)"
                   ] == pytest.approx(0.8)
    assert seconds["trainer: imports"] == 2.0
    assert [name for name, _ in stages(run)][4:7] == [
        "trainer: imports", "trainer: fit", "trainer: register"]
    # The trainer ended at 1.0 + 3.1 = 4.1; the container was seen terminated at 5.0.
    assert seconds["trainer's result -> container seen terminated (termination message, "
                   "interpreter exit, kubelet noticing)"] == pytest.approx(0.9)
    assert seconds["operator: container seen terminated -> TrainingJob Succeeded"
                   ] == pytest.approx(0.2)


def test_medians_are_per_stage_over_the_runs() -> None:
    runs = [timeline(0, fit=0.1), timeline(100, fit=0.3), timeline(200, fit=0.2)]
    medians = dict(median_stages(runs))
    assert medians["trainer: fit"] == 0.2


def test_the_table_ends_with_the_end_to_end_time_and_the_overhead() -> None:
    rows = breakdown_table([timeline(), timeline(50)], [0.1, 0.1])
    assert rows[-2] == "| **end to end** | **5.20** |"
    assert rows[-1] == "| **platform overhead (end to end minus fit)** | **5.10** |"
