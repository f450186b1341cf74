"""Console output of the suite's processes: one logging set-up, and TensorFlow without its start-up chatter.

The command line and every worker process it spawns call `configure_logging` (so a worker's epoch lines
show as the main process's do) and `import_tensorflow_quietly` (so no process prints TensorFlow's
load-time notices).
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile

SUITE_LOGGERS = ("fer_common", "replications")
# TF_CPP_MIN_LOG_LEVEL: 0 shows all of TensorFlow's C++ messages, 1 hides INFO, 2 also WARNING, 3 also ERROR.
TENSORFLOW_LOG_LEVEL = "2"
# absl writes these while TensorFlow's libraries load, before TensorFlow reads TF_CPP_MIN_LOG_LEVEL.
_ABSL_PRE_INIT_NOTICE = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
_ABSL_SEVERITIES = "IWEF"  # INFO, WARNING, ERROR, FATAL: the first letter of absl's line prefix, e.g. "I0000 "
_ABSL_LINE = re.compile(rf"^([{_ABSL_SEVERITIES}])\d{{4}} ")


class _SuiteHandler(logging.StreamHandler):
    """Writes to sys.stderr as it is when a message comes, not as it was at set-up (tests replace it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass  # always the current sys.stderr


class _SuiteFormatter(logging.Formatter):
    """The suite's messages as they are (warnings say so); other libraries' with their logger's name."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if record.name.split(".")[0] not in SUITE_LOGGERS:
            return f"{record.name}: {record.levelname.lower()}: {text}"
        if record.levelno >= logging.WARNING:
            return f"{record.levelname.lower()}: {text}"
        return text


def configure_logging(level: int = logging.INFO) -> None:
    """The suite's loggers at `level`, every other library's at WARNING, all to stderr. Calling it again
    replaces the earlier set-up."""
    root = logging.getLogger()
    for handler in [handler for handler in root.handlers if isinstance(handler, _SuiteHandler)]:
        root.removeHandler(handler)
    handler = _SuiteHandler()
    handler.setFormatter(_SuiteFormatter("%(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    for name in SUITE_LOGGERS:
        logging.getLogger(name).setLevel(level)


def suite_log_level() -> int:
    """The level the suite's messages are shown at in this process (for worker processes to follow)."""
    return logging.getLogger(SUITE_LOGGERS[0]).getEffectiveLevel()


def import_tensorflow_quietly() -> None:
    """Import TensorFlow, dropping the lines its C++ libraries write while they load that TF_CPP_MIN_LOG_LEVEL
    would hide had it been read by then (absl's pre-initialisation notice, oneDNN's "custom operations are on").
    Every other line is passed on to stderr."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", TENSORFLOW_LOG_LEVEL)
    if "tensorflow" in sys.modules:
        return
    hidden = _ABSL_SEVERITIES[: _tensorflow_log_level()]
    sys.stderr.flush()
    saved_stderr = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)  # the C++ libraries write to file descriptor 2, not to sys.stderr
        try:
            import tensorflow  # noqa: F401
        finally:
            os.dup2(saved_stderr, 2)
            os.close(saved_stderr)
            captured.seek(0)
            lines = captured.read().decode("utf-8", errors="replace").splitlines(keepends=True)
            sys.stderr.write("".join(line for line in lines if not _is_hidden(line, hidden)))


def _tensorflow_log_level() -> int:
    try:
        return min(max(int(os.environ["TF_CPP_MIN_LOG_LEVEL"]), 0), 3)
    except ValueError:
        return 0


def _is_hidden(line: str, hidden_severities: str) -> bool:
    if line.strip() == _ABSL_PRE_INIT_NOTICE:
        return bool(hidden_severities)
    match = _ABSL_LINE.match(line)
    return bool(match) and match.group(1) in hidden_severities
