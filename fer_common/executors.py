"""Where the jobs of a run execute: here one after another, in a pool of local processes, or on Ray.

`execute` runs `function(task)` for every task and hands each result to `on_done` the moment it arrives
(the runner writes it to disk there), so finished work survives whatever happens to the rest. A task that
raises is tried again (`retries` times) and, if it still fails, reported in the returned failures; the
other tasks go on. A worker process that dies (killed, out of memory) breaks its whole pool: the tasks
running beside it fail with it and are charged an attempt too. A FerError is different: it says the input
or the environment is wrong (missing data, package or weights file), which no retry can fix, so it stops
the run at once; tasks still running are stopped.

Tasks and results cross process (and machine) boundaries: both must be picklable, and `function` must be
a module-level function that the workers can import.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from fer_common.errors import FerError
from fer_common.logs import configure_logging, import_tensorflow_quietly, suite_log_level

log = logging.getLogger(__name__)
EXECUTORS = ("sequential", "process", "ray")
RAY_MISSING = '--executor ray needs Ray, which is not installed: pip install -e ".[ray]"'
_PARENT_WATCH = "fer-replicate-parent-watch"
_PARENT_POLL_S = 1.0
_ORPHAN_EXIT_CODE = 3


@dataclass(frozen=True)
class ExecutorOptions:
    """How a run's jobs execute; the command line's --executor, --workers, --ray-address and --retries."""

    kind: str = "sequential"
    workers: int = 0  # jobs at once (process, ray); 0 = automatic
    ray_address: str | None = None  # join this Ray cluster ("auto": the one this machine belongs to)
    retries: int = 1  # further attempts of a job that raised

    def __post_init__(self) -> None:
        if self.kind not in EXECUTORS:
            raise FerError(f"executor must be one of {', '.join(EXECUTORS)}, not {self.kind!r}")
        if self.workers < 0 or self.retries < 0:
            raise FerError(f"--workers and --retries cannot be negative (got {self.workers}, {self.retries})")
        if self.workers and self.kind == "sequential":
            raise FerError("--workers needs --executor process or --executor ray")
        if self.ray_address and self.kind != "ray":
            raise FerError("--ray-address needs --executor ray")
        if self.kind == "ray" and importlib.util.find_spec("ray") is None:
            raise FerError(RAY_MISSING)  # said before the run spends minutes loading its data

    @property
    def parallel(self) -> bool:
        return self.kind != "sequential"

    @property
    def joins_cluster(self) -> bool:
        return self.kind == "ray" and bool(self.ray_address)


@dataclass(frozen=True)
class Capacity:
    """How many jobs run at once and how many TensorFlow threads each one gets."""

    workers: int | None  # None: as many as the Ray cluster schedules
    threads: int  # 0: TensorFlow's own choice (the sequential default)


def plan_capacity(options: ExecutorOptions, threads: int, job_count: int, cores: int | None = None) -> Capacity:
    """Workers and threads per job, so that the workers of one machine share its cores without oversubscribing.

    threads: the run's --threads (0 = not given). A local pool gets `cores // workers` threads per job; on a
    Ray cluster, whose machines this one cannot see, a job takes 1 CPU unless --threads says more.
    """
    if not options.parallel:
        return Capacity(workers=1, threads=threads)
    if options.joins_cluster:
        return Capacity(workers=options.workers or None, threads=threads or 1)
    cores = cores or os.cpu_count() or 1
    workers = options.workers or max(1, min(cores, job_count))
    return Capacity(workers=workers, threads=threads or max(1, cores // workers))


@dataclass
class TaskFailure:
    """A task that raised on every attempt; `trace` is the last attempt's traceback, as its worker saw it."""

    task: Any
    error: BaseException
    trace: str
    attempts: int

    def describe(self) -> str:
        return f"{type(self.error).__name__}: {self.error}"


@dataclass
class _Completion:
    handle: Any
    result: Any = None
    error: BaseException | None = None
    trace: str = ""


def _trace(error: BaseException) -> str:
    # A process pool chains the worker's own traceback as the error's cause, so it is printed too.
    return "".join(traceback.format_exception(error))


def execute(
    tasks: Sequence[Any],
    function: Callable[[Any], Any],
    options: ExecutorOptions,
    capacity: Capacity,
    on_done: Callable[[Any, Any], None],
    *,
    label: Callable[[Any], str] = str,
    prefix: str = "",
) -> list[TaskFailure]:
    """Run `function(task)` for every task; `on_done(task, result)` as each finishes; returns the failures."""
    if not tasks:
        return []
    limit = capacity.workers or len(tasks)
    waiting = deque((task, 1) for task in tasks)
    running: dict[Any, tuple[Any, int]] = {}
    failures: list[TaskFailure] = []
    started = 0
    runner = _make_runner(function, options, capacity)
    try:
        while waiting or running:
            # Never more submitted than can run: a dead worker then takes down only jobs that had started.
            while waiting and len(running) < limit:
                task, attempt = waiting.popleft()
                if attempt == 1:
                    started += 1
                    log.info("%s job %d/%d: %s", prefix, started, len(tasks), label(task))
                running[runner.submit(task)] = (task, attempt)
            completion = runner.wait_any(list(running))
            task, attempt = running.pop(completion.handle)
            if completion.error is None:
                on_done(task, completion.result)
                continue
            if isinstance(completion.error, FerError):
                raise completion.error
            log.error("%s", completion.trace.rstrip())
            tries = options.retries + 1
            error_text = f"{type(completion.error).__name__}: {completion.error}"
            failed = f"{prefix} job {label(task)} failed (attempt {attempt} of {tries}): {error_text}"
            if attempt < tries:
                log.warning("%s; retrying", failed)
                waiting.append((task, attempt + 1))
            else:
                log.error("%s", failed)
                failures.append(TaskFailure(task, completion.error, completion.trace, attempt))
    finally:
        # Left early (a FerError, Ctrl-C): jobs still running are stopped, not waited for.
        runner.close(abandoned=list(running))
    return failures


class _Runner(Protocol):
    def submit(self, task: Any) -> Any:
        """Start a task; returns its handle."""
        ...

    def wait_any(self, handles: list) -> _Completion:
        """Wait until one of the handles' tasks ends."""
        ...

    def close(self, abandoned: list) -> None:
        """Release the workers; stop the tasks of `abandoned` handles, still running."""
        ...


def _make_runner(function: Callable[[Any], Any], options: ExecutorOptions, capacity: Capacity) -> _Runner:
    if options.kind == "process":
        return _ProcessRunner(function, capacity.workers or 1)
    if options.kind == "ray":
        return _RayRunner(function, options, capacity)
    return _SequentialRunner(function)


@dataclass(frozen=True)
class _WorkerSetup:
    """What a worker process takes over from the main process before it runs a task."""

    log_level: int  # the suite's messages show as in the main process (epoch lines, warnings)
    # Where the main process uses TensorFlow the tasks will too: the worker loads it up front, without its
    # load-time notices. Tasks that never need it (the pool's own tests) do not pay for loading it.
    loads_tensorflow: bool
    parent: int = 0  # the main process: a worker whose parent has died stops (0: no watch)

    @classmethod
    def like_this_process(cls) -> _WorkerSetup:
        return cls(log_level=suite_log_level(), loads_tensorflow="tensorflow" in sys.modules, parent=os.getpid())


def _prepare_worker(setup: _WorkerSetup) -> None:
    configure_logging(setup.log_level)
    if setup.parent:
        _exit_with_parent(setup.parent)
    if setup.loads_tensorflow:
        import_tensorflow_quietly()


def _exit_with_parent(parent: int) -> None:
    """Stop this worker once its parent is gone: a runner killed alone (`kill <pid>`, a session that ends)
    must not leave its workers training for hours on a machine nobody watches."""
    if any(thread.name == _PARENT_WATCH for thread in threading.enumerate()):
        return

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(_PARENT_POLL_S)
        os._exit(_ORPHAN_EXIT_CODE)  # no cleanup to run: its task's results would reach nobody

    threading.Thread(target=watch, name=_PARENT_WATCH, daemon=True).start()


def _run_in_worker(function: Callable[[Any], Any], setup: _WorkerSetup, task: Any) -> Any:
    _prepare_worker(setup)
    return function(task)


class _SequentialRunner:
    """Runs each task in this process the moment it is submitted."""

    def __init__(self, function: Callable[[Any], Any]) -> None:
        self._function = function
        self._done: dict[int, _Completion] = {}
        self._count = 0

    def submit(self, task: Any) -> int:
        self._count += 1
        try:
            completion = _Completion(self._count, result=self._function(task))
        except Exception as error:
            completion = _Completion(self._count, error=error, trace=_trace(error))
        self._done[self._count] = completion
        return self._count

    def wait_any(self, handles: list[int]) -> _Completion:
        return self._done.pop(handles[0])

    def close(self, abandoned: list[int]) -> None:
        self._done.clear()


class _ProcessRunner:
    """A pool of spawned worker processes (TensorFlow does not survive fork); a pool a worker killed is replaced."""

    def __init__(self, function: Callable[[Any], Any], workers: int) -> None:
        self._function = function
        self._setup = _WorkerSetup.like_this_process()
        self._workers = workers
        self._pool = None
        self._pool_of: dict[Any, Any] = {}  # future -> the pool it ran in

    def submit(self, task: Any):
        from concurrent.futures.process import BrokenProcessPool

        try:
            future = self._current_pool().submit(_run_in_worker, self._function, self._setup, task)
        except BrokenProcessPool:
            # A worker died since the last wait: that pool's jobs report it when waited on; this one goes to a
            # new pool.
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
            future = self._current_pool().submit(_run_in_worker, self._function, self._setup, task)
        self._pool_of[future] = self._pool
        return future

    def _current_pool(self):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        if self._pool is None:
            # The setup runs as the pool's initializer: before a task is unpickled, since unpickling a job
            # imports its replication, and with it TensorFlow and its load-time notices.
            self._pool = ProcessPoolExecutor(
                self._workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_prepare_worker,
                initargs=(self._setup,),
            )
        return self._pool

    def wait_any(self, handles: list) -> _Completion:
        from concurrent.futures import FIRST_COMPLETED, wait
        from concurrent.futures.process import BrokenProcessPool

        done, _ = wait(handles, return_when=FIRST_COMPLETED)
        future = next(iter(done))
        pool = self._pool_of.pop(future)
        try:
            return _Completion(future, result=future.result())
        except BrokenProcessPool as error:
            # A worker died (killed, out of memory): every job of that pool fails with this error, and
            # retries need a new pool. Only the broken pool is dropped, not one made since.
            if pool is self._pool:
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None
            return _Completion(future, error=error, trace=_trace(error))
        except Exception as error:
            return _Completion(future, error=error, trace=_trace(error))

    def close(self, abandoned: list) -> None:
        if self._pool is None:
            return
        if abandoned:
            # The pool has no public way to stop a running job (terminate_workers comes with Python 3.14).
            for process in list((self._pool._processes or {}).values()):
                process.terminate()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._pool = None


def import_ray():
    """The `ray` module, or a FerError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise FerError(RAY_MISSING) from None
    return ray


class _RayRunner:
    """Ray tasks, each reserving its job's threads as CPUs; joins a cluster or starts (and stops) a local Ray."""

    def __init__(self, function: Callable[[Any], Any], options: ExecutorOptions, capacity: Capacity) -> None:
        self._ray = import_ray()
        self._started_here = not self._ray.is_initialized()
        if self._started_here and options.ray_address:
            self._ray.init(address=options.ray_address)
        elif self._started_here:
            cpus = (capacity.workers or 1) * capacity.threads
            self._ray.init(num_cpus=cpus, include_dashboard=False)
        self._function = function
        # Ray's workers are its own daemons' children, and Ray stops them itself: no parent watch.
        self._setup = replace(_WorkerSetup.like_this_process(), parent=0)
        # max_retries=0: --retries counts every attempt, whatever made it fail.
        self._remote = self._ray.remote(num_cpus=capacity.threads, max_retries=0)(_run_in_worker)

    def submit(self, task: Any):
        return self._remote.remote(self._function, self._setup, task)

    def wait_any(self, handles: list) -> _Completion:
        [ref], _ = self._ray.wait(handles, num_returns=1)
        try:
            return _Completion(ref, result=self._ray.get(ref))
        except self._ray.exceptions.RayTaskError as error:
            # The job's own exception (a FerError stays a FerError); the text carries the worker's traceback.
            return _Completion(ref, error=error.cause or error, trace=str(error))
        except Exception as error:  # a worker or node lost
            return _Completion(ref, error=error, trace=_trace(error))

    def close(self, abandoned: list) -> None:
        for ref in abandoned:
            self._ray.cancel(ref, force=True)
        if self._started_here:
            self._ray.shutdown()
