"""One package per replicated paper: `metadata.yaml` (the single source of truth) and `replication.py`."""
