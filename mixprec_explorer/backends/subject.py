"""What a backend compiles: a captured graph and the batches for calibration, never the facade itself.

Backends read a model through :class:`Model` (the captured graph, its program, example inputs, nodes and the
calibration batches) and take the plan as an argument. :class:`Subject` is that record alone: the worker process
holds one per shipped program, and a cast-graph build wraps its cast program in one. The facade's Explorer has
the same attributes, so it is passed as it is; :class:`Planner` adds the settings and ``plan()`` the compile
template reads on the user's side (the cache key, the plan to pass down).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import torch

    from ..capture import CapturedGraph
    from ..inputs import Batch
    from ..policy import PrecisionPlan
    from ..records import NodeInfo
    from ..settings import Settings

__all__ = ["Model", "Planner", "Subject", "subject_of"]


class Model(Protocol):
    """The model as a backend reads it (an Explorer or a :class:`Subject`)."""

    @property
    def captured(self) -> CapturedGraph: ...

    @property
    def exported_program(self) -> torch.export.ExportedProgram: ...

    @property
    def example_inputs(self) -> tuple[Any, ...]: ...

    @property
    def nodes(self) -> dict[str, NodeInfo]: ...

    @property
    def calibration_batches(self) -> tuple[Batch, ...]: ...


class Planner(Model, Protocol):
    """A :class:`Model` that also decides plans (the facade): what the compile template is handed."""

    @property
    def settings(self) -> Settings: ...

    def plan(self, settings: Settings | None = None) -> PrecisionPlan: ...


@dataclass(frozen=True, eq=False)
class Subject:
    """A captured graph and its calibration batches: the :class:`Model` a backend compiles, without the facade."""

    captured: CapturedGraph
    calibration_batches: tuple[Batch, ...] = ()

    @property
    def exported_program(self) -> torch.export.ExportedProgram:
        return self.captured.exported_program

    @property
    def example_inputs(self) -> tuple[Any, ...]:
        return self.captured.example_inputs

    @property
    def nodes(self) -> dict[str, NodeInfo]:
        return self.captured.nodes


def subject_of(program: torch.export.ExportedProgram, example_inputs: Sequence[Any] | None = None,
               calibration_batches: Sequence[Batch] = ()) -> Subject:
    """A :class:`Subject` over ``program`` (captured here: nodes and graph), with the batches given."""
    from ..capture import capture

    return Subject(capture(program, example_inputs), tuple(calibration_batches))
