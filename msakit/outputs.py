"""Writing files safely: every file msakit writes goes through here.

``atomic_write`` (a temporary name beside the target, then a rename), strict JSON, and the
output rule of ``check_outputs``: msakit writes only the paths the user named (or documented
siblings of them), never over one of its own inputs, and never over an existing file unless
asked (``--overwrite``), all checked before any work starts.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from msakit.errors import MissingFileError, RunDirError

TMP_SUFFIX = ".partial"


def _file_mode() -> int:
    """The mode a plain ``open()`` would give a new file under the current umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: Path, write) -> None:
    """Call ``write(tmp_path)`` then rename onto ``path``.

    The temporary file is ``.<name>.<random>.partial`` beside ``path``; a process killed
    mid-write leaves one behind, which ``remove_partial_files`` clears at the next start. The
    file gets the mode a plain ``open()`` would give it, so every file of a run shares one mode.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, _file_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_partial_files(directory: Path) -> list[Path]:
    """Delete temporary files left in ``directory`` (and ``best/``) by a killed write."""
    removed = []
    for folder in (directory, directory / "best"):
        if folder.is_dir():
            for leftover in folder.glob(f".*{TMP_SUFFIX}"):
                leftover.unlink(missing_ok=True)
                removed.append(leftover)
    return removed


def finite_json(value: Any) -> Any:
    """``value`` with every NaN/inf float replaced by ``None`` (JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(v) for v in value]
    if hasattr(value, "tolist"):
        return finite_json(value.tolist())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return finite_json(dataclasses.asdict(value))
    return value


def write_json(path: Path, payload: Any) -> None:
    """Strict JSON (non-finite numbers written as null), atomically."""
    text = json.dumps(finite_json(payload), indent=2, allow_nan=False, default=_json_default) + "\n"
    atomic_write(path, lambda p: p.write_text(text))


def read_json(path: Path, what: str = "file") -> Any:
    """Parse a JSON file of a run, or a ``RunDirError`` naming it."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MissingFileError(f"{path}: no such {what}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RunDirError(f"{path}: damaged {what}, not valid JSON ({error}); restore it or re-run") from None


def _json_default(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")



# ---- the output rule ----------------------------------------------------------------------------

def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def check_writable_location(option: str, path: Path, start: Path, error=None) -> None:
    """The nearest existing folder at or above ``start`` is a writable folder, else one line
    naming ``option`` (as ``error``, ``ConfigError`` by default)."""
    from msakit.errors import ConfigError

    error = error or ConfigError
    existing = start
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise error(f"{option} {path}: {existing} is a file, not a folder; choose another path")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise error(f"{option} {path}: the folder {existing} is not writable; choose another path")


def _inside(path: Path, folder: Path) -> bool:
    """``path`` (existing or not, through links) lies in ``folder`` or is it."""
    try:
        resolved, base = path.resolve(), folder.resolve()
    except (OSError, RuntimeError):
        return False
    return resolved == base or base in resolved.parents


def check_outputs(outputs: list[tuple[str, str | os.PathLike]], *, inputs: list[str | os.PathLike] = (), overwrite: bool = False,
                  resumable: list[str | os.PathLike] = (), protected: list[tuple[str, str | os.PathLike]] = ()) -> list[Path]:
    """Check, before any work starts, every file a command is about to write.

    ``outputs`` are ``(option, path)`` pairs: each path the user named, and each documented
    sibling written beside it (named by the option it derives from, e.g. ``"--output (its .json)"``).
    A path is refused with one line naming the option when it is a directory, when its folder is a
    file or not writable, when it is one of the command's ``inputs`` (never written, even with
    ``overwrite``; also through a link), when two outputs are the same path, and when it exists
    and ``overwrite`` is false, unless it is in ``resumable`` (msakit's own output of the same job,
    which the command knows how to continue), and when it lies inside a ``protected`` folder
    (``(what, folder)`` pairs, e.g. the run being read: never written into, even with
    ``overwrite``). Returns the paths, as ``Path``.
    """
    from msakit.errors import ConfigError, ExistingRunError

    checked: list[Path] = []
    input_paths = [Path(p) for p in inputs if p is not None]
    keep = [Path(p) for p in resumable]
    for option, raw in outputs:
        path = Path(raw)
        if path.is_dir():
            raise ConfigError(f"{option} {path}: is a directory; give the path of the file to write (e.g. {path / 'out'}{path.suffix or ''})")
        for what, folder in protected:
            if folder is not None and _inside(path, Path(folder)):
                raise ConfigError(f"{option} {path}: lies inside {what} ({folder}), which is never written into, "
                                  "--overwrite or not; choose a path outside it")
        for source in input_paths:
            if _same_file(path, source):
                raise ConfigError(f"{option} {path}: is one of this command's inputs and is never written over; choose another path")
        for earlier in checked:
            if _same_file(path, earlier):
                raise ConfigError(f"{option} {path}: is also the path of another output of this command; choose distinct paths")
        check_writable_location(option, path, path.parent)
        if (path.exists() or path.is_symlink()) and not overwrite and not any(_same_file(path, k) for k in keep):
            raise ExistingRunError(f"{option} {path}: exists and is not replaced; pass --overwrite to replace it, or choose another path")
        checked.append(path)
    return checked


def check_output_dir(option: str, path: str | os.PathLike, *, inputs: list[str | os.PathLike] = ()) -> Path:
    """A folder a command writes into (its own files in it are resumable output): refused with
    one line naming the option when it is a file (an input file included) or lies inside no
    writable folder. ``inputs`` name the command's inputs for the message."""
    from msakit.errors import ConfigError

    path = Path(path)
    if path.exists() and not path.is_dir():
        is_input = any(s is not None and _same_file(path, Path(s)) for s in inputs)
        raise ConfigError(f"{option} {path}: is a file{' (one of the inputs)' if is_input else ''}, not a folder; "
                          "give a folder path (it is created if missing)")
    check_writable_location(option, path, path)
    return path
