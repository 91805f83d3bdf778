"""Published torch-tensorrt wheels, downloaded once into pytest's cache folder and read as zip files.

The wheels are 3.7-4.3 MB each (measured for 2.9.0 to 2.14.0), so the whole wheel is fetched with
``pip download --no-deps`` and its Python sources (and the runtime library's string literals) are read from the
zip: tensorrt is never imported. Skips, with the reason, when the index cannot be reached.
"""

from __future__ import annotations

import inspect
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from mixprec_explorer.backends.tensorrt import signature_from_source

PYTHONS = ("3.12", "3.11", "3.13", "3.10")
PLATFORM = "manylinux_2_28_x86_64"


def download(version: str, folder: Path, package: str = "torch-tensorrt") -> Path:
    """The release's wheel (of ``package``: torch-tensorrt or torch-tensorrt-rtx), from the cache folder or the
    index; skip with the reason when it cannot be had."""
    stem = package.replace("-", "_")
    cached = sorted(folder.glob(f"{stem}-{version}-*.whl"))
    if cached:
        return cached[0]
    errors = []
    for python in PYTHONS:
        command = [sys.executable, "-m", "pip", "download", f"{package}=={version}", "--no-deps",
                   "--only-binary=:all:", "--platform", PLATFORM, "--python-version", python, "-d", str(folder),
                   "--disable-pip-version-check", "--quiet"]
        try:
            proc = subprocess.run(command, capture_output=True, text=True, timeout=300)
        except subprocess.TimeoutExpired:
            errors.append(f"python {python}: timed out")
            continue
        found = sorted(folder.glob(f"{stem}-{version}-*.whl"))
        if proc.returncode == 0 and found:
            return found[0]
        errors.append(f"python {python}: " + (proc.stderr.strip().splitlines() or ["no output"])[-1])
    pytest.skip(f"cannot download the {package} {version} wheel (offline, or no {PLATFORM} wheel): "
                + "; ".join(errors)[:500])


class Release:
    """The Python sources (and native libraries) of one downloaded wheel."""

    def __init__(self, version: str, wheel: Path) -> None:
        self.version = version
        self.zip = zipfile.ZipFile(wheel)
        self.names = set(self.zip.namelist())

    def has(self, path: str) -> bool:
        return f"torch_tensorrt/{path}" in self.names

    def source(self, path: str) -> str:
        return self.zip.read(f"torch_tensorrt/{path}").decode("utf-8")

    def binary(self, path: str) -> bytes:
        return self.zip.read(f"torch_tensorrt/{path}")

    def signature(self, path: str, function: str) -> inspect.Signature:
        return signature_from_source(self.source(path), function)

    def compile_signature(self) -> inspect.Signature:
        return self.signature("dynamo/_compiler.py", "compile")


def wheel_folder(config: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pytest's cache folder for the wheels (kept between runs); a temporary one under -p no:cacheprovider."""
    cache = getattr(config, "cache", None)
    return Path(cache.mkdir("torch-tensorrt-wheels")) if cache is not None else tmp_path_factory.mktemp("wheels")


def release_loader(config: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Release]:
    """A function (version, package="torch-tensorrt") -> Release, each wheel downloaded (or taken from the cache) once
    per session."""
    loaded: dict[tuple[str, str], Release] = {}

    def load(version: str, package: str = "torch-tensorrt") -> Release:
        if (version, package) not in loaded:
            loaded[version, package] = Release(version, download(version, wheel_folder(config, tmp_path_factory),
                                                                 package))
        return loaded[version, package]

    return load
