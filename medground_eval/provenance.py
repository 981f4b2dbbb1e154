"""Where a number came from: package version, time, command line, sha256 of each input, the resolved frame.

Every ``metrics.json`` the CLI writes (``score --output``, ``score --report``, ``compare --output``,
``leaderboard --format json``) carries :func:`provenance` under the key ``"provenance"``, and each report shows it.
"""

from __future__ import annotations

import hashlib
import platform
import shlex
import sys
from collections.abc import Mapping
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from medground_eval.frames import get_frame

HASH_BLOCK = 1 << 20
"""Bytes read at a time while hashing."""


def package_version() -> str:
    """The installed distribution's version (``importlib.metadata``), else ``medground_eval.__version__``."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("medground-eval")
    except PackageNotFoundError:
        from medground_eval import __version__

        return __version__


def file_digest(path: str | Path) -> dict[str, Any]:
    """``{"path", "sha256", "bytes"}`` of a file; of a folder, ``{"path", "sha256", "bytes", "files"}`` where the
    digest is the sha256 of the sorted lines ``"<relative path>\\t<sha256 of the file>"`` of every file under it
    (so renaming, adding or changing any file changes it). A path that does not exist gets ``"sha256": None``."""
    path = Path(path)
    if path.is_file():
        return {"path": str(path), "sha256": _sha256(path), "bytes": path.stat().st_size}
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        lines = "".join(f"{p.relative_to(path).as_posix()}\t{_sha256(p)}\n" for p in files)
        return {"path": str(path), "sha256": hashlib.sha256(lines.encode("utf-8")).hexdigest(),
                "bytes": sum(p.stat().st_size for p in files), "files": len(files)}
    return {"path": str(path), "sha256": None, "bytes": None}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def command_line(ctx: Any | None = None, argv: list[str] | None = None) -> str:
    """The command, shell-quoted. With ``ctx`` (the command's ``typer.Context``): ``medground-eval``, the command's
    name, its arguments and every option the invocation set (not left at its default), so pasting it into a shell
    runs the same thing; else ``medground-eval`` and ``argv[1:]`` (default ``sys.argv``)."""
    if ctx is None:
        return shlex.join(["medground-eval", *(sys.argv if argv is None else argv)[1:]])
    words = ["medground-eval", *ctx.command_path.split()[1:]]
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if param.param_type_name == "argument":
            words += [str(v) for v in (value if isinstance(value, (list, tuple)) else [value]) if v is not None]
            continue
        source = ctx.get_parameter_source(param.name)
        if source is None or source.name in ("DEFAULT", "DEFAULT_MAP") or value is None:
            continue
        if getattr(param, "is_flag", False):
            flags = param.opts if value else param.secondary_opts
            words += flags[:1]
        elif isinstance(value, (list, tuple)):
            for item in value:
                words += [param.opts[0], str(item)]
        else:
            words += [param.opts[0], str(value)]
    return shlex.join(words)


def resolved_frame(frame: str | None) -> dict[str, Any] | None:
    """The frame preset's name and its parameters (kind, factor, min/max pixels); None when ``frame`` is None."""
    if frame is None:
        return None
    name = frame.split(" (")[0]  # a compat run records "pixel (raw coordinates, ...)"
    return {"name": name, **asdict(get_frame(name))}


def provenance(inputs: Mapping[str, str | Path | None], *, frame: str | None = None, ctx: Any | None = None,
               argv: list[str] | None = None) -> dict[str, Any]:
    """The provenance record: ``package``, ``version``, ``time`` (UTC, ISO 8601), ``command``, ``python``,
    ``inputs`` (role -> :func:`file_digest`, roles whose path is None left out) and ``frame``
    (:func:`resolved_frame`); ``ctx`` / ``argv`` as in :func:`command_line`."""
    return {
        "package": "medground-eval",
        "version": package_version(),
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": command_line(ctx, argv),
        "python": platform.python_version(),
        "inputs": {role: file_digest(path) for role, path in inputs.items() if path is not None},
        "frame": resolved_frame(frame),
    }


def provenance_rows(record: Mapping[str, Any]) -> list[list[str]]:
    """``[name, value]`` rows for a report's Provenance table."""
    rows = [["version", f"{record['package']} {record['version']}"], ["time", record["time"]],
            ["command", record["command"]]]
    for role, digest in record["inputs"].items():
        rows.append([f"{role}", f"{digest['path']} (sha256 {digest['sha256']})"])
    if record.get("frame"):
        rows.append(["frame", ", ".join(f"{k}={v}" for k, v in record["frame"].items())])
    return rows
