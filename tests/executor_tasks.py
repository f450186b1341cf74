"""Task functions for the executor tests; a module of their own so worker processes import nothing heavy."""

import os
import time
from pathlib import Path

from fer_common.errors import WeightsError


def square(task: tuple[str, int]) -> int:
    return task[1] ** 2


def fails_once(task: tuple[str, int]) -> int:
    """Raises on the first attempt at a task (a marker file remembers it across processes), then squares."""
    marker, value = Path(task[0]), task[1]
    if not marker.exists():
        marker.touch()
        raise RuntimeError(f"first attempt at {value} fails")
    return value**2


def dies_once(task: tuple[str, int]) -> int:
    """With a marker path: kills its worker process on the first attempt, as an out-of-memory kill would."""
    marker, value = task
    if marker and not Path(marker).exists():
        Path(marker).touch()
        os._exit(3)
    return value**2


def always_fails(task: tuple[str, int]) -> int:
    raise RuntimeError(f"task {task[1]} always fails")


def needs_weights(task: tuple[str, int]) -> int:
    raise WeightsError("the weights file is missing")


def needs_weights_or_sleeps(task: tuple[str, int]) -> int:
    """Task ("weights", _) raises a WeightsError; any other sleeps its value in seconds."""
    if task[0] == "weights":
        raise WeightsError("the weights file is missing")
    time.sleep(task[1])
    return task[1]


def writes_pid_then_sleeps(task: tuple[str, int]) -> int:
    """Writes its worker's pid to the file named, then sleeps its value in seconds."""
    Path(task[0]).write_text(str(os.getpid()))
    time.sleep(task[1])
    return task[1]
