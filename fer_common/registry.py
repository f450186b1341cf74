"""The replications the suite knows, by id: the one place that names them (as timm's model registry does).

Each entry is a function that imports its replication only when asked for, and the metadata file beside it:
listing ids and reading metadata stay cheap (the report imports no TensorFlow), and a broken replication
cannot break the others' commands.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fer_common.errors import MetadataError

if TYPE_CHECKING:  # the contract imports the training stack; the registry is read by the report too
    from fer_common.contract import Replication

_PACKAGES = Path(__file__).resolve().parent.parent  # where `replications/` and `recipes/` lie


def _hong() -> Replication:
    from replications.hong.replication import Hong

    return Hong()


def _hong_class_grouping() -> Mapping[str, str]:
    from replications.hong.data import CLASS_OF_EXPRESSION  # CFD's five expressions as three classes

    return CLASS_OF_EXPRESSION


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


@dataclass(frozen=True)
class Entry:
    """How to make a replication, and its metadata file (read without importing the replication)."""

    factory: Callable[[], Replication]
    metadata_file: Path
    # {dataset class: model class} where the paper's model classes group its dataset's (read by cross_dataset)
    class_grouping: Callable[[], Mapping[str, str]] | None = None


@dataclass(frozen=True)
class DefaultModel:
    """The bundle `predict` and `demo` load when none is named (shipped in fer_common/pretrained, with its card),
    and the entry whose run makes it."""

    replication_id: str
    bundle: str


class Registry:
    """Replication ids -> entries. `with_replication` returns a new registry (a test's extra paper)."""

    def __init__(self, entries: Mapping[str, Entry], default_model: DefaultModel | None = None) -> None:
        self._entries = dict(entries)
        self.default_model = default_model

    def ids(self) -> list[str]:
        return list(self._entries)

    def _entry(self, replication_id: str) -> Entry:
        if replication_id not in self._entries:
            raise MetadataError(f"unknown replication {replication_id!r}; known: {', '.join(self._entries)}")
        return self._entries[replication_id]

    def metadata_file(self, replication_id: str) -> Path:
        return self._entry(replication_id).metadata_file

    def class_grouping(self, replication_id: str) -> Mapping[str, str] | None:
        grouping = self._entry(replication_id).class_grouping
        return None if grouping is None else grouping()

    def get(self, replication_id: str) -> Replication:
        replication = self._entry(replication_id).factory()
        if replication.id != replication_id:
            raise ValueError(f"registry entry {replication_id!r} gives replication {replication.id!r}")
        return replication

    def with_replication(self, replication: Replication) -> Registry:
        entry = Entry(lambda: replication, replication.metadata_file)
        return Registry({**self._entries, replication.id: entry}, self.default_model)


def _paper(
    replication_id: str,
    factory: Callable[[], Replication],
    class_grouping: Callable[[], Mapping[str, str]] | None = None,
) -> Entry:
    return Entry(factory, _PACKAGES / "replications" / replication_id / "metadata.yaml", class_grouping)


REPLICATIONS = Registry(
    {
        "hong": _paper("hong", _hong, class_grouping=_hong_class_grouping),
        "cmu": _paper("cmu", _cmu),
        "cmu_proxy": _paper("cmu_proxy", _cmu_proxy),
        "chen": _paper("chen", _chen),
        "boyce": _paper("boyce", _boyce),
        "neamtiu": _paper("neamtiu", _neamtiu),
        "fer2013_cnn": Entry(_fer2013_cnn, _PACKAGES / "recipes" / "fer2013_cnn" / "metadata.yaml"),
    },
    # Shipped in fer_common/pretrained by `make ship-fer2013_cnn`: it beats the Neamtiu CNN shipped before it on the
    # same PrivateTest images (McNemar; its card, fer_common/pretrained/fer2013_cnn.md, pairs it with both).
    default_model=DefaultModel("fer2013_cnn", "fer2013_cnn"),
)
