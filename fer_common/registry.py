"""The replications the suite knows, by id: the one place that names them (as timm's model registry does).

Each entry is a function that imports its replication only when asked for, so listing ids stays cheap
and a broken replication cannot break the others' commands.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from fer_common.contract import Replication
from fer_common.errors import MetadataError


def _hong() -> Replication:
    from replications.hong.replication import Hong

    return Hong()


def _cmu() -> Replication:
    from replications.cmu.replication import Cmu

    return Cmu()


def _cmu_proxy() -> Replication:
    from replications.cmu_proxy.replication import CmuProxy

    return CmuProxy()


def _chen() -> Replication:
    from replications.chen.replication import Chen

    return Chen()


def _boyce() -> Replication:
    from replications.boyce.replication import Boyce

    return Boyce()


def _neamtiu() -> Replication:
    from replications.neamtiu.replication import Neamtiu

    return Neamtiu()


def _fer2013_cnn() -> Replication:
    from recipes.fer2013_cnn.recipe import Fer2013Cnn  # our own model recipe, not a paper

    return Fer2013Cnn()


class Registry:
    """Replication ids -> factories. `with_replication` returns a new registry (a test's extra paper)."""

    def __init__(self, factories: Mapping[str, Callable[[], Replication]]) -> None:
        self._factories = dict(factories)

    def ids(self) -> list[str]:
        return list(self._factories)

    def get(self, replication_id: str) -> Replication:
        if replication_id not in self._factories:
            raise MetadataError(f"unknown replication {replication_id!r}; known: {', '.join(self._factories)}")
        replication = self._factories[replication_id]()
        if replication.id != replication_id:
            raise ValueError(f"registry entry {replication_id!r} gives replication {replication.id!r}")
        return replication

    def with_replication(self, replication: Replication) -> Registry:
        return Registry({**self._factories, replication.id: lambda: replication})


REPLICATIONS = Registry(
    {
        "hong": _hong,
        "cmu": _cmu,
        "cmu_proxy": _cmu_proxy,
        "chen": _chen,
        "boyce": _boyce,
        "neamtiu": _neamtiu,
        "fer2013_cnn": _fer2013_cnn,
    }
)
