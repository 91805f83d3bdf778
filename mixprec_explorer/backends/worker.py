"""Worker process: compiles and measurements run here, so a crash (segfault, CUDA error, ``os._exit``) spares the caller.

The worker is started with the ``spawn`` method and kept for later calls. Each call is a request object with an
``execute(store)`` method (:mod:`mixprec_explorer.backends.requests`; :class:`FunctionCall` for a plain
function); programs go to it through ``torch.export.save`` to a temporary file, plans and settings as plain data;
results asked to be kept stay in the worker's store under an id. A death raises :class:`~mixprec_explorer.errors.WorkerCrashed` carrying the tail of the worker's
stdout and stderr, which are redirected at the file-descriptor level so native messages are kept too. The next call
starts a fresh worker.
"""

from __future__ import annotations

import atexit
import contextlib
import contextvars
import dataclasses
import faulthandler
import itertools
import multiprocessing as mp
import os
import pickle
import signal
import sys
import tempfile
import threading
import time
import traceback
import types
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..errors import MixprecError, OptionError, OptionTypeError, UnknownName, WorkerCrashed

__all__ = ["FunctionCall", "InjectedFailure", "Ref", "Request", "Worker", "get_worker", "progress_bar",
           "report_progress", "shutdown_worker", "stored"]

_TAIL_BYTES = 6000
_FAULTS = ("exit", "segfault", "raise")

_CONN: Any = None  # set inside the worker: the pipe to the parent
_BAR: contextvars.ContextVar[Any] = contextvars.ContextVar("mixprec_progress_bar", default=None)


class InjectedFailure(MixprecError, RuntimeError):
    """The failure ``fault="raise"`` injects into the worker (a testing hook)."""


@dataclass(frozen=True)
class Ref:
    """Stands for an object that lives in the worker: ``kind`` is "model" (a :class:`~.subject.Subject`) or "compiled"."""

    kind: str
    id: str


class Request(Protocol):
    """What the worker runs: ``execute`` gets the worker's store (id -> kept object); ``what`` names the call."""

    @property
    def what(self) -> str: ...

    def execute(self, store: Mapping[str, Any]) -> Any: ...


def stored(store: Mapping[str, Any], kind: str, key: str) -> Any:
    """The object the worker keeps as ``key``; UnknownName when it is not there (a restarted worker)."""
    if key not in store:
        raise UnknownName(f"the worker holds no {kind} {key!r} (it may have been restarted)")
    return store[key]


@dataclass(frozen=True)
class FunctionCall:
    """Call ``function(*args, **kwargs)`` in the worker (the function pickled by reference); :class:`Ref`
    arguments stand for objects the worker keeps."""

    function: Callable[..., Any]
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    what: str = "worker call"

    def execute(self, store: Mapping[str, Any]) -> Any:
        return self.function(*_resolve(self.args, store), **_resolve(dict(self.kwargs), store))


# -- progress -------------------------------------------------------------------------------------------------
def report_progress(desc: str, n: int | None = None, total: int | None = None) -> None:
    """Report a step of long work: to the parent from a worker, else to the active progress bar (if any)."""
    if _CONN is not None:
        with contextlib.suppress(Exception):
            _CONN.send_bytes(pickle.dumps(("progress", desc, n, total)))
        return
    bar = _BAR.get()
    if bar is not None:
        bar.step(desc, n, total)


class _Bar:
    """A tqdm.auto bar that shows the current step's text and, when given, its count."""

    def __init__(self, title: str) -> None:
        from tqdm.auto import tqdm

        self.title = title
        self.bar = tqdm(total=None, desc=title, leave=False, dynamic_ncols=True, bar_format="{desc} [{elapsed}]")

    def step(self, desc: str, n: int | None, total: int | None) -> None:
        if total is not None and self.bar.total != total:
            self.bar.bar_format = None
            self.bar.reset(total=total)
        if n is not None:
            self.bar.n = n
        self.bar.set_description_str(f"{self.title}: {desc}", refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


@contextlib.contextmanager
def progress_bar(enabled: bool, title: str) -> Iterator[Any]:
    """A progress bar (tqdm.auto: notebook widget or terminal) for the block, or nothing when disabled."""
    if not enabled:
        yield None
        return
    bar = _Bar(title)
    token = _BAR.set(bar)
    try:
        yield bar
    finally:
        _BAR.reset(token)
        bar.close()


# -- the worker side ------------------------------------------------------------------------------------------
def _resolve(value: Any, store: Mapping[str, Any]) -> Any:
    if isinstance(value, Ref):
        return stored(store, value.kind, value.id)
    if isinstance(value, tuple):
        return tuple(_resolve(v, store) for v in value)
    if isinstance(value, list):
        return [_resolve(v, store) for v in value]
    if isinstance(value, dict):
        return {k: _resolve(v, store) for k, v in value.items()}
    return value


def numerics_flags() -> dict[str, Any]:
    """PyTorch's process-wide numerics switches (TF32, reduced-precision reductions) as set in this process.

    A worker or sweep process starts with PyTorch's defaults; it takes these so that a plan is compiled, run and
    compared under the numerics the user chose (``torch.backends.cudnn.allow_tf32 = False`` for strict FP32).
    """
    import torch

    matmul = torch.backends.cuda.matmul
    return {"matmul.allow_tf32": matmul.allow_tf32, "cudnn.allow_tf32": torch.backends.cudnn.allow_tf32,
            "matmul.allow_fp16_reduced_precision_reduction": matmul.allow_fp16_reduced_precision_reduction,
            "matmul.allow_bf16_reduced_precision_reduction": matmul.allow_bf16_reduced_precision_reduction}


def apply_numerics_flags(flags: dict[str, Any] | None) -> None:
    """Set the switches :func:`numerics_flags` read (in a worker or sweep process); None leaves them alone."""
    import torch

    for name, value in (flags or {}).items():
        owner, _, attr = name.partition(".")
        setattr(torch.backends.cuda.matmul if owner == "matmul" else torch.backends.cudnn, attr, value)


def _inject(fault: str) -> None:
    print(f"mixprec worker: injected fault {fault!r} (testing hook)", flush=True)
    if fault == "exit":
        os._exit(3)
    if fault == "segfault":
        import ctypes

        ctypes.string_at(0)  # reads address 0: SIGSEGV
    raise InjectedFailure("mixprec worker: injected failure (testing hook)")


def _stripped(value: Any) -> Any:
    """What goes back to the parent for a stored result: a Compiled without its handle; None for anything else."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type) and hasattr(value, "handle"):
        return dataclasses.replace(value, handle=None)
    return None


def _error_message(err: BaseException) -> tuple:
    text = "".join(traceback.format_exception(type(err), err, err.__traceback__))
    try:
        blob = pickle.dumps(err)
        pickle.loads(blob)
    except Exception:
        blob = None
    return ("error", blob, type(err).__name__, str(err), text)


def _serve(conn: Any, log_path: str) -> None:
    """The worker's main loop (runs in the spawned process)."""
    global _CONN
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
    faulthandler.enable(file=sys.stderr)
    _CONN = conn
    store: dict[str, Any] = {}
    counter = itertools.count()
    print(f"mixprec worker {os.getpid()} ready", flush=True)
    while True:
        try:
            message = pickle.loads(conn.recv_bytes())
        except (EOFError, OSError):
            return
        kind = message[0]
        if kind == "stop":
            return
        if kind == "drop":
            for key in message[1]:
                store.pop(key, None)
            continue
        _, request, keep, fault, flags = message
        try:
            apply_numerics_flags(flags)
            if fault:
                _inject(fault)
            result = request.execute(store)
            if keep is not None:
                key = keep or f"obj{next(counter)}"
                store[key] = result
                reply: Any = ("result", (key, _stripped(result)))
            else:
                reply = ("result", result)
        except BaseException as err:  # everything goes back to the parent, nothing kills the loop
            reply = _error_message(err)
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            blob = pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as err:  # an unpicklable result
            blob = pickle.dumps(_error_message(TypeError(f"the worker's result could not be sent back: {err}")))
        conn.send_bytes(blob)


# -- the parent side ------------------------------------------------------------------------------------------
def _describe_exit(code: int | None) -> str:
    if code is None:
        return "was stopped"
    if code < 0:
        try:
            return f"was killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


def _tail(path: Path) -> str:
    size = 0
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - _TAIL_BYTES))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return "(no output captured)"
    lines = text.splitlines()
    if size > _TAIL_BYTES and lines:
        lines = lines[1:]  # first line is likely cut
    return "\n".join(lines).strip() or "(no output)"


class Worker:
    """One spawned worker process at a time; restarts after a crash. Thread-safe (one call at a time)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._process: Any = None
        self._conn: Any = None
        self._log: Path | None = None
        self.generation = 0  #: incremented each time a new process starts
        self.models: set[str] = set()  #: model ids the current process holds
        self._drops: list[str] = []

    @property
    def is_alive(self) -> bool:
        return self._process is not None and self._process.is_alive()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def output_tail(self) -> str:
        """The last lines the current (or last) worker wrote to stdout/stderr."""
        return _tail(self._log) if self._log else ""

    def ensure_started(self) -> None:
        """Start a worker process unless one is running."""
        with self._lock:
            if not self.is_alive:
                self._reset()
                self._start()

    def _start(self) -> None:
        if self._log is not None:  # the previous worker's output, kept until now for its crash report
            with contextlib.suppress(OSError):
                self._log.unlink()
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        fd, log = tempfile.mkstemp(prefix="mixprec_worker_", suffix=".log")
        os.close(fd)
        process = ctx.Process(target=_serve, args=(child, log), name="mixprec-worker", daemon=False)
        # spawn re-runs the caller's main script in the child unless it is guarded by `if __name__ == "__main__"`;
        # the worker needs nothing from it, so hide it while starting.
        main = sys.modules.get("__main__")
        sys.modules["__main__"] = types.ModuleType("__main__")
        try:
            process.start()
        finally:
            if main is not None:
                sys.modules["__main__"] = main
        child.close()
        self._process, self._conn, self._log = process, parent, Path(log)
        self.generation += 1
        self.models = set()
        self._drops = []

    def _reset(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
        self._process = None
        self._conn = None
        self.models = set()

    def _crash(self, what: str, reason: str | None = None) -> WorkerCrashed:
        process = self._process
        if process is not None:
            process.join(timeout=5)
        code = process.exitcode if process is not None else None
        tail = self.output_tail()
        self._reset()
        why = reason or f"the worker process (pid {getattr(process, 'pid', '?')}) {_describe_exit(code)}"
        return WorkerCrashed(f"{what} failed: {why}. The explorer is unchanged; the next call starts a fresh "
                             f"worker. Worker's last output:\n{tail}")

    def drop(self, key: str, generation: int) -> None:
        """Forget a stored result (sent with the next call; safe to call from finalizers)."""
        if generation == self.generation:
            self._drops.append(key)

    def call(self, request: Request, *, keep: str | None = None, fault: str | None = None,
             timeout_s: float | None = None) -> Any:
        """Execute ``request`` in the worker (against its store of kept objects).

        With ``keep`` (an id, or "" for a fresh one) the result stays in the worker and ``(id, summary)`` comes
        back, the summary being a Compiled without its handle (None for other objects). Raises WorkerCrashed if the worker dies or exceeds ``timeout_s``; a Python exception
        in the worker is re-raised here with the worker's traceback attached.
        """
        if fault is not None and fault not in _FAULTS:
            raise OptionError(f"fault must be one of {_FAULTS}, got {fault!r}")
        what = request.what
        with self._lock:
            self.ensure_started()
            if self._drops:
                drops, self._drops = self._drops, []
                with contextlib.suppress(Exception):
                    self._conn.send_bytes(pickle.dumps(("drop", drops)))
            try:
                blob = pickle.dumps(("call", request, keep, fault, numerics_flags()),
                                    protocol=pickle.HIGHEST_PROTOCOL)
            except Exception as err:
                raise OptionTypeError(f"{what}: the request cannot be sent to the worker ({err})") from err
            try:
                self._conn.send_bytes(blob)
            except (BrokenPipeError, EOFError, OSError) as err:
                raise self._crash(what) from err
            deadline = None if timeout_s is None else time.monotonic() + timeout_s
            while True:
                try:
                    ready = self._conn.poll(0.05)
                except (EOFError, OSError) as err:
                    raise self._crash(what) from err
                if ready:
                    try:
                        message = pickle.loads(self._conn.recv_bytes())
                    except (EOFError, OSError) as err:
                        raise self._crash(what) from err
                    if message[0] == "progress":
                        report_progress(*message[1:])
                        continue
                    if message[0] == "result":
                        return message[1]
                    raise _rebuild(message)
                if not self._process.is_alive():
                    if self._conn.poll(0):
                        continue  # a reply sent just before exiting
                    raise self._crash(what)
                if deadline is not None and time.monotonic() > deadline:
                    self._process.kill()
                    raise self._crash(what, f"it ran past timeout_s={timeout_s:g} s and was killed")

    def stop(self) -> None:
        """Ask the worker to exit (kill it if it does not within 5 s) and remove its log."""
        with self._lock:
            process = self._process
            if process is not None:
                with contextlib.suppress(Exception):
                    self._conn.send_bytes(pickle.dumps(("stop",)))
                process.join(timeout=5)
                if process.is_alive():
                    process.kill()
                    process.join(timeout=5)
            self._reset()
            if self._log is not None:
                with contextlib.suppress(OSError):
                    self._log.unlink()


def _rebuild(message: tuple) -> BaseException:
    _, blob, name, text, trace = message
    err: BaseException | None = None
    if blob is not None:
        with contextlib.suppress(Exception):
            err = pickle.loads(blob)
    if err is None:
        err = MixprecError(f"{name} in the worker: {text}")
    if hasattr(err, "add_note"):
        err.add_note(f"raised in the mixprec worker process:\n{trace.rstrip()}")
    return err


_WORKER: Worker | None = None
_WORKER_LOCK = threading.Lock()


def get_worker() -> Worker:
    """The process-wide worker (started on its first call)."""
    global _WORKER
    with _WORKER_LOCK:
        if _WORKER is None:
            _WORKER = Worker()
            atexit.register(_WORKER.stop)
        return _WORKER


def shutdown_worker() -> None:
    """Stop the process-wide worker, if one runs; compiled results held there become unusable."""
    if _WORKER is not None:
        _WORKER.stop()
