"""What an analysis reads of the model it analyses: narrow protocols, never the facade itself.

Analyses are handed the facade (``Explorer``) by the facade, but they name only what they read of it, here, so
nothing below the facade imports ``explorer.py``. Each protocol lists the members its users call, and why; the
Explorer has them all (mypy checks it where the facade passes itself down). The backends' own view of a model,
:class:`~mixprec_explorer.backends.subject.Model` and :class:`~mixprec_explorer.backends.subject.Planner` (a Model
that plans), is reused where an analysis hands the model on to a backend; what compiles, profiles and checks a plan
is :class:`~mixprec_explorer.analysis.backend.Bench`.

======================  =================================================  =====================================
protocol                members                                            read by
======================  =================================================  =====================================
:class:`Program`        ``exported_program``, ``nodes``                    :class:`~.runner.PlanRunner` (a
                                                                           ``CapturedGraph`` is one too)
:class:`Plans`          ``plan(settings)``                                 :class:`~.runner.PlanEvaluator`
:class:`Captured`       ``captured``                                       a sweep (inputs, the program shipped)
:class:`Analysed`       a Program, Captured, with ``settings``             sensitivity
:class:`Catalogued`     an Analysed with ``modules`` and ``ops()``         the search's candidates
:class:`Measurable`     an Analysed that plans (Plans) on a backend        the frontier
                        (Bench)
:class:`Checked`        a backends Planner with ``calibration``            accuracy
======================  =================================================  =====================================

The search and the predictor read more of the facade (its predictor, the settings they load): their protocols
(``search.Searched``, ``predict.Planned`` and ``predict.Workbench``) sit beside them, as they name the predictor.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

from ..backends.subject import Planner
from .backend import Bench

if TYPE_CHECKING:
    import torch

    from ..capture import CapturedGraph
    from ..policy import PrecisionPlan
    from ..records import CalibrationStat, NodeInfo
    from ..settings import Settings

__all__ = ["Analysed", "Captured", "Catalogued", "Checked", "Measurable", "Plans", "Program"]


class Program(Protocol):
    """A captured program to run node by node: its ExportedProgram (what runs) and node records (which nodes
    autocast classifies). An Explorer, or a ``CapturedGraph`` alone."""

    @property
    def exported_program(self) -> torch.export.ExportedProgram: ...

    @property
    def nodes(self) -> Mapping[str, NodeInfo]: ...


class Plans(Protocol):
    """What decides the plan of a Settings (the facade keeps its plans cached): the nodes a plan runs low."""

    def plan(self, settings: Settings) -> PrecisionPlan: ...


class Captured(Protocol):
    """Whatever holds a capture record: inputs are checked against it, a sweep ships its program to its workers."""

    @property
    def captured(self) -> CapturedGraph: ...


class Analysed(Program, Captured, Protocol):
    """A :class:`Program` with its capture record (:class:`Captured`) and the current settings (an analysis's low
    dtype defaults to theirs)."""

    @property
    def settings(self) -> Settings: ...


class Catalogued(Analysed, Protocol):
    """An :class:`Analysed` model with its module map and op census: what exclusions a user could write."""

    @property
    def modules(self) -> Mapping[str, tuple[str, ...]]: ...

    def ops(self) -> Mapping[str, int]: ...


class Measurable(Analysed, Plans, Bench, Protocol):
    """An :class:`Analysed` model that plans (:class:`Plans`) and compiles, profiles and checks plans on a backend
    (:class:`~mixprec_explorer.analysis.backend.Bench`): what a frontier prices and measures."""


class Checked(Planner, Protocol):
    """A backends :class:`~mixprec_explorer.backends.subject.Planner` (a compiled plan runs where it lives) with its
    calibration: the ranges an accuracy check names where the low type's range is left ({} before any)."""

    @property
    def calibration(self) -> Mapping[str, CalibrationStat]: ...
