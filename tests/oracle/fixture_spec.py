"""Read a legacy trial fixture folder and build its LightningModule and DataModule the way the
trial's ``__init__`` does, without Determined.

The convention the fixtures follow (and ``tests/test_oracles.py`` checks against each
``model_def.py``): a constructor parameter named like a hyperparameter gets that hyperparameter;
one named like a ``data`` key gets that value; the DataModule gets every ``data`` key and
``batch_size``; everything else keeps its default.
"""

from __future__ import annotations

import importlib.util
import inspect
import pathlib
import sys
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import yaml

from shim.errors import ShimError

__all__ = ["FixtureSpec", "OracleError", "load_fixture"]

# Hyperparameters the trial reads itself rather than passing to a constructor.
_LOADER_HPARAMS = frozenset({"global_batch_size", "shuffle"})


class OracleError(ShimError):
    """A fixture cannot be run by the Lightning oracle as asked."""


@dataclass(frozen=True)
class FixtureSpec:
    """A fixture folder: its config and the module file holding the Lightning classes."""

    directory: pathlib.Path
    config: dict[str, Any]
    module: ModuleType
    module_cls: type
    datamodule_cls: type

    def hparams(self, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        """The constant hyperparameters of ``const.yaml``, with ``overrides`` applied."""
        overrides = overrides or {}
        space = self._space()
        unknown = sorted(set(overrides) - set(space))
        if unknown:
            raise OracleError(
                f"{self.directory / 'const.yaml'}: no hyperparameter {unknown} to override; "
                f"known: {sorted(space)}"
            )
        return {
            name: overrides[name] if name in overrides else _constant(self.directory, name, entry)
            for name, entry in space.items()
        }

    @property
    def data(self) -> dict[str, Any]:
        return dict(self.config.get("data") or {})

    def module_kwargs(self, hparams: dict[str, Any]) -> dict[str, Any]:
        return self._kwargs(self.module_cls, hparams)

    def datamodule_kwargs(self, hparams: dict[str, Any]) -> dict[str, Any]:
        # Every data key, as the trial's `**context.get_data_config()` passes them.
        kwargs = {**self._kwargs(self.datamodule_cls, hparams), **self.data}
        return {**kwargs, "batch_size": hparams["global_batch_size"]}

    def build_module(self, hparams: dict[str, Any]) -> Any:
        return self.module_cls(**self.module_kwargs(hparams))

    def build_datamodule(self, hparams: dict[str, Any]) -> Any:
        return self.datamodule_cls(**self.datamodule_kwargs(hparams))

    def _space(self) -> dict[str, Any]:
        space = self.config.get("hyperparameters")
        if not isinstance(space, dict) or "global_batch_size" not in space:
            raise OracleError(
                f"{self.directory / 'const.yaml'}: hyperparameters must be a mapping with "
                "global_batch_size"
            )
        return space

    def _kwargs(self, cls: type, hparams: dict[str, Any]) -> dict[str, Any]:
        data = self.data
        clash = sorted((set(hparams) & set(data)) - _LOADER_HPARAMS)
        if clash:
            raise OracleError(
                f"{self.directory / 'const.yaml'}: {clash} is both a hyperparameter and a data "
                "key; rename one so the constructor argument is unambiguous"
            )
        params = inspect.signature(cls).parameters
        chosen = {**data, **{k: v for k, v in hparams.items() if k not in _LOADER_HPARAMS}}
        return {k: v for k, v in chosen.items() if k in params and k != "batch_size"}


def load_fixture(directory: pathlib.Path) -> FixtureSpec:
    """Read ``const.yaml`` and import the folder's one module besides ``model_def.py``."""
    directory = pathlib.Path(directory).resolve()
    config_path = directory / "const.yaml"
    if not config_path.is_file():
        raise OracleError(f"{directory}: no const.yaml; pass a fixture folder")
    config = yaml.safe_load(config_path.read_text())
    if not isinstance(config, dict):
        raise OracleError(f"{config_path}: expected a mapping at the top level")
    module = _import_module_file(directory)
    return FixtureSpec(
        directory=directory,
        config=config,
        module=module,
        module_cls=_only_subclass(module, "LightningModule"),
        datamodule_cls=_only_subclass(module, "LightningDataModule"),
    )


def _constant(directory: pathlib.Path, name: str, entry: Any) -> Any:
    if not isinstance(entry, dict):
        return entry
    if entry.get("type") == "const":
        return entry["val"]
    raise OracleError(
        f"{directory / 'const.yaml'}: hyperparameter {name!r} is a search space "
        f"({entry.get('type')!r}); the oracle runs one trial, so give it a constant or an override"
    )


def _import_module_file(directory: pathlib.Path) -> ModuleType:
    candidates = sorted(p for p in directory.glob("*.py") if p.name != "model_def.py")
    if len(candidates) != 1:
        names = [p.name for p in candidates]
        raise OracleError(
            f"{directory}: expected exactly one module besides model_def.py holding the "
            f"LightningModule and DataModule, found {names}"
        )
    path = candidates[0]
    existing = sys.modules.get(path.stem)
    if existing is not None and pathlib.Path(str(existing.__file__)).resolve() == path:
        return existing
    spec = importlib.util.spec_from_file_location(path.stem, path)
    if spec is None or spec.loader is None:
        raise OracleError(f"{path}: cannot be imported as a module")
    module = importlib.util.module_from_spec(spec)
    # Registered under its own name, as model_def.py's `from <name> import ...` would.
    sys.modules[path.stem] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[path.stem]
        raise
    return module


def _only_subclass(module: ModuleType, base_name: str) -> type:
    import pytorch_lightning as pl

    base = getattr(pl, base_name)
    found = [
        obj
        for obj in vars(module).values()
        if isinstance(obj, type) and issubclass(obj, base) and obj.__module__ == module.__name__
    ]
    if len(found) != 1:
        raise OracleError(
            f"{module.__file__}: expected exactly one {base_name} subclass, found "
            f"{[cls.__name__ for cls in found]}"
        )
    return found[0]
