"""Load a pickle without letting the file run code.

MMSA feature files (``unaligned_50.pkl`` and friends) are pickles, and people download them
from shared drives and mirrors. ``pickle.load`` would call whatever function the file names
(``os.system``, ``builtins.eval``, ...) while loading, so a tampered file owns the machine
the moment it is read. The data itself never needs that: it is dicts, lists, strings,
numbers and numpy arrays. ``safe_load`` therefore unpickles with an allow-list of the few
globals a numpy array pickle references and refuses the file on the first other global,
*before* anything is called. Arrays of Python objects are checked after loading: an
object array of ``str`` (how MMSA sometimes stores ``id``/``raw_text``) becomes
``list[str]``; any other object array is refused, so downstream code only ever sees
numeric or string data.
"""

from __future__ import annotations

import collections
import importlib
import os
import pickle
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np

from msakit.errors import DataError, MissingFileError

__all__ = ["UnsafePickleError", "safe_load"]


class UnsafePickleError(DataError):
    """A pickle names a global outside the allow-list; loading it would run code from the file."""


def _numpy_core_attr(submodule: str, name: str) -> Callable[[], Any]:
    """Resolve ``numpy._core.<submodule>.<name>`` (numpy 2) or ``numpy.core...`` (numpy 1).

    Pickles written under numpy 1 say ``numpy.core``, under numpy 2 ``numpy._core``; both
    must load whichever numpy is installed, and without going through numpy 2's deprecated
    ``numpy.core`` shim (which warns on access).
    """

    def resolve() -> Any:
        for package in ("numpy._core", "numpy.core"):
            try:
                module = importlib.import_module(f"{package}.{submodule}")
            except ImportError:
                continue
            if hasattr(module, name):
                return getattr(module, name)
        raise pickle.UnpicklingError(f"this numpy has no {submodule}.{name}")

    return resolve


# (module, name) as written in the pickle -> a function returning the object to use.
# Every entry only builds data: an array, a dtype, a numpy scalar, bytes, or a container.
_ALLOWED: dict[tuple[str, str], Callable[[], Any]] = {
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
    ("_codecs", "encode"): lambda: __import__("_codecs").encode,  # bytes payloads, protocol < 3
    ("collections", "OrderedDict"): lambda: collections.OrderedDict,
    # Protocols 0-2 spell sets as calls to set()/frozenset(); protocol 4 has opcodes for them.
    ("builtins", "set"): lambda: set,
    ("builtins", "frozenset"): lambda: frozenset,
}
for _package in ("numpy.core", "numpy._core"):
    _ALLOWED[(f"{_package}.multiarray", "_reconstruct")] = _numpy_core_attr("multiarray", "_reconstruct")
    _ALLOWED[(f"{_package}.multiarray", "scalar")] = _numpy_core_attr("multiarray", "scalar")
    # Protocol 5 (pickle.HIGHEST_PROTOCOL) stores arrays as a buffer plus numeric._frombuffer.
    _ALLOWED[(f"{_package}.numeric", "_frombuffer")] = _numpy_core_attr("numeric", "_frombuffer")


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: Any, path: str) -> None:
        # latin1 lets Python 2 era numpy pickles decode their byte payloads; it changes
        # nothing for Python 3 pickles.
        super().__init__(file, encoding="latin1")
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        resolve = _ALLOWED.get((module, name))
        if resolve is None:
            raise UnsafePickleError(
                f"{self._path}: refused to load this pickle: it references the global "
                f"'{module}.{name}', and loading it would run code named by the file. "
                "msakit only loads pickles of plain dicts, lists, strings, numbers and numpy "
                "arrays; re-export the data as those (e.g. convert DataFrames or custom "
                "objects to dicts of numpy arrays and lists of str) and pickle it again."
            )
        return resolve()

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("the pickle uses persistent ids, which plain data never needs")


def _check_objects(value: Any, path: str, where: str, seen: set[int]) -> Any:
    """Return ``value`` with object arrays of str turned into lists; refuse other object arrays."""
    if isinstance(value, np.ndarray):
        if not value.dtype.hasobject:
            return value
        items = value.ravel().tolist() if value.dtype == object else None
        if items is not None and all(isinstance(item, str) for item in items):
            return value.tolist()
        kinds = sorted({type(item).__name__ for item in items}) if items is not None else [str(value.dtype)]
        raise DataError(
            f"{path}: the array at {where or 'the top level'} holds Python objects ({', '.join(kinds[:5])}), "
            "not numbers or strings; msakit only reads numeric arrays and arrays/lists of str. "
            "Re-export that entry as a numeric numpy array or a list of str."
        )
    if id(value) in seen:
        return value
    if isinstance(value, dict):
        seen.add(id(value))
        for key in list(value):
            value[key] = _check_objects(value[key], path, f"{where}/{key}" if where else str(key), seen)
    elif isinstance(value, list):
        seen.add(id(value))
        for i, item in enumerate(value):
            value[i] = _check_objects(item, path, f"{where}[{i}]", seen)
    elif isinstance(value, tuple):
        seen.add(id(value))
        return tuple(_check_objects(item, path, f"{where}[{i}]", seen) for i, item in enumerate(value))
    return value


def safe_load(path: str | os.PathLike[str]) -> object:
    """Unpickle ``path`` allowing only plain containers, str/bytes/numbers and numpy arrays.

    Raises ``FileNotFoundError`` if the file is missing, ``UnsafePickleError`` if it names
    any other global (nothing from the file has run at that point), and ``ValueError`` if
    it is not a readable pickle or holds object arrays of anything but ``str``.
    """
    path = Path(path)
    shown = str(path)
    if not path.exists():
        raise MissingFileError(f"{shown}: no such file")
    if path.is_dir():
        raise DataError(f"{shown}: is a directory, not a pickle file")
    with path.open("rb") as file:
        try:
            value = _RestrictedUnpickler(file, shown).load()
        except UnsafePickleError:
            raise
        except MemoryError:
            size = path.stat().st_size / 2**30
            raise DataError(
                f"{shown}: ran out of memory while loading it ({size:.2f} GiB on disk); the file is damaged "
                "(it claims sizes it does not hold) or needs more memory than this machine has"
            ) from None
        except EOFError as error:
            detail = "the file is empty" if path.stat().st_size == 0 else "it ends early (truncated?)"
            raise DataError(f"{shown}: not a valid pickle: {detail}") from error
        except Exception as error:  # noqa: BLE001 - any failure here means a broken file
            raise DataError(
                f"{shown}: not a valid pickle ({type(error).__name__}: {error}); "
                "check the file was fully downloaded and is an MMSA-style feature pickle"
            ) from error
    limit = sys.getrecursionlimit()
    try:
        return _check_objects(value, shown, "", set())
    except RecursionError as error:
        raise DataError(f"{shown}: the pickled data is nested more than ~{limit} levels deep") from error
