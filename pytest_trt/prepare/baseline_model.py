"""The model a baseline was recorded from, read back from git at the baseline's commit and built
the way the new one is: what an interleaved A/B times beside it (baselines/interleaved.py)."""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pytest_trt.baselines.git import file_at
from pytest_trt.errors import PytestTrtError
from pytest_trt.store.files import write_atomic

if TYPE_CHECKING:
    from pytest_trt.baselines.entry import BaselineEntry
    from pytest_trt.prepare.engine import Engine
    from pytest_trt.prepare.engines import EngineFactory


@dataclass(frozen=True)
class BaselineModels:
    """The engines of baselines' own models, made by this process's engine factory."""

    engines: EngineFactory

    def engine(self, engine: Engine, entry: BaselineEntry) -> Engine | str | None:
        """``baseline_model_engine`` of this factory."""
        return baseline_model_engine(self.engines, engine, entry)

    def release(self, engine: Engine) -> None:
        """Close a baseline model's engine once its A/B is over: it holds device memory."""
        self.engines.discard(engine)


def baseline_model_engine(engines: EngineFactory, engine: Engine, entry: BaselineEntry) -> Engine | str | None:
    """The engine of the baseline's model (same backend, build and inputs as ``engine``), why
    there is none, or None where the baseline names no model file in git (nothing to say: the
    model was not in git, or the entry was recorded before models were named). Only a model git
    holds, byte for byte the one the baseline hashed, is used."""
    model = entry.model
    if model is None or model.source is None or model.content_hash is None or not entry.commit:
        return None
    if engine.spec.torch is not None or engine.spec.path is None:
        return None
    commit = entry.commit.removesuffix("-dirty")
    content = file_at(commit, model.source, engine.model.path.parent)
    if content is None:
        return f"git cannot show {model.source} at commit {commit[:12]}"
    if hashlib.sha256(content).hexdigest() != model.content_hash:
        return (
            f"{model.source} at commit {commit[:12]} is not the model the baseline was recorded from (recorded from "
            "uncommitted changes, or its weights are in external-data files)"
        )
    folder = engines.workdir() / "baseline-models" / model.content_hash[:16]
    path = folder / model.file
    try:
        if not path.is_file():
            folder.mkdir(parents=True, exist_ok=True)
            write_atomic(path, content)
        return engines.engine(dataclasses.replace(engine.spec, path=path), engine.backend)
    except (PytestTrtError, OSError) as exc:
        return f"the baseline's model could not be built: {exc}"
