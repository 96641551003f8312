"""`python -m mlcycle_trainer ingest|train|search`: run one command, report its typed result through
the termination message, exit with the contract's code.

Every outcome writes the termination-message JSON; a failure also logs one line with its
reason. Neither ever contains an environment value (secrets are scrubbed regardless).
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from typing import NoReturn

from mlcycle_contract.environment import (
    COMMAND_INGEST,
    COMMAND_SEARCH,
    COMMAND_TRAIN,
    EXIT_INTERNAL_ERROR,
    EXIT_OK,
    TERMINATION_LOG,
)
from mlcycle_contract.results import CommandResult
from mlcycle_trainer import phases, termination
from mlcycle_trainer.environment import optional
from mlcycle_trainer.errors import (
    INTERNAL_ERROR,
    UNKNOWN_COMMAND,
    Terminated,
    TrainerError,
)
from mlcycle_trainer.logs import configure_logging

logger = logging.getLogger("mlcycle_trainer")

USAGE = f"usage: python -m mlcycle_trainer {{{COMMAND_INGEST}|{COMMAND_TRAIN}|{COMMAND_SEARCH}}}"


def _command(name: str) -> Callable[[], CommandResult] | None:
    # Imported on demand: each command loads only the libraries it needs.
    if name == COMMAND_INGEST:
        from mlcycle_trainer.ingest import run_ingest

        return run_ingest
    if name == COMMAND_TRAIN:
        from mlcycle_trainer.train import run_train

        return run_train
    if name == COMMAND_SEARCH:
        from mlcycle_trainer.search import run_search

        return run_search
    return None


def _import_command(name: str) -> Callable[[], CommandResult] | None:
    """`_command`, with the cyclic garbage collector paused while it imports: importing
    scikit-learn, pandas, MLflow and skops only allocates objects that live as long as the
    process, yet each import triggered full collections that traversed them all (five
    in an iris training, about a fifth of the imports' time). Frozen afterwards, those
    objects are left out of every later collection too."""
    gc.disable()
    try:
        return _command(name)
    finally:
        gc.freeze()
        gc.enable()


def _where(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    return f" at {frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno}" if frames else ""


def _terminate(signum: int, _frame: object) -> None:
    """SIGTERM (the pod is stopping) unwinds like an error: the MLflow run ends FAILED and
    the termination message says why. As PID 1, Python would otherwise ignore it."""
    raise Terminated(f"stopped by signal {signal.Signals(signum).name}")


def main(argv: list[str]) -> int:
    configure_logging()
    signal.signal(signal.SIGTERM, _terminate)
    path = optional(TERMINATION_LOG)
    name = argv[0] if len(argv) == 1 else ""
    started = time.perf_counter()
    phases.lap("interpreter start")
    try:
        command = _import_command(name)
        if command is None:
            raise TrainerError(UNKNOWN_COMMAND, f"unknown command {' '.join(argv)!r}; {USAGE}")
        phases.lap("imports")
        result = command()
        code = EXIT_OK
        size = termination.write(path, result)
        logger.info(
            "%s succeeded in %.1f s (termination message: %d bytes)",
            name,
            time.perf_counter() - started,
            size,
        )
    except (TrainerError, Terminated) as exc:
        code = exc.exit_code
        termination.write(path, termination.failure(exc.reason, exc.message, exc.field))
        logger.error("%s failed: %s: %s", name or "mlcycle_trainer", exc.reason, exc.message)
    except Exception as exc:
        code = EXIT_INTERNAL_ERROR
        text = f"{type(exc).__name__}: {exc}{_where(exc)}"
        termination.write(path, termination.failure(INTERNAL_ERROR, text))
        logger.error("%s failed: %s: %s", name, INTERNAL_ERROR, text)
    return code


def exit_now(code: int) -> NoReturn:
    """End the process with `code` once its output is flushed, skipping the interpreter's
    teardown: with scikit-learn, pandas and MLflow loaded, freeing every module takes a few
    tenths of a second of the run, and once the result is written nothing is pending (the
    MLflow run has ended, nothing logs in the background)."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    exit_now(main(sys.argv[1:]))
