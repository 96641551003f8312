"""An idle operator's log: timer ticks that succeeded are not written, everything else is."""

from __future__ import annotations

import logging

from mlcycle.__main__ import quiet_timer_successes


def record(name: str, message: str, level: int = logging.INFO) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, message, None, None)


def test_only_a_timer_s_success_is_dropped() -> None:
    assert not quiet_timer_successes(record("kopf.objects", "Timer 'model_deployment_tick' "
                                                            "succeeded."))
    assert quiet_timer_successes(record("kopf.objects", "Timer 'model_deployment_tick' failed "
                                                        "temporarily: MLflow registry: down"))
    assert quiet_timer_successes(record("kopf.objects", "Handler 'dataset_changed' succeeded."))
    assert quiet_timer_successes(record("mlcycle.kube", "Timer x succeeded."))
