"""User-facing errors: the CLI prints their message (no traceback) and exits non-zero."""


class FerError(Exception):
    """A problem with the user's input or environment, explained in plain words."""

    exit_code = 2


class DatasetError(FerError):
    """A dataset is missing, laid out wrongly, corrupt or fails its checksums."""


class MetadataError(FerError):
    """A replication's metadata file is missing a field or has a wrong value."""


class RecordError(FerError):
    """A result record is unreadable or does not follow the schema."""


class WeightsError(FerError):
    """Pretrained weights are missing or do not match the model."""


class JobsFailedError(FerError):
    """Jobs of a run still failed after their retries: no record, the finished jobs kept for a re-run."""

    exit_code = 1
