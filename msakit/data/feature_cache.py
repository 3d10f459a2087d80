"""Parse a feature pickle once: a memory-mapped cache of what the reader produced.

The first read of an MMSA pickle writes the validated ``FeatureData`` to a directory of plain
``.npy`` arrays plus a ``manifest.json`` (never a pickle). Every later run, sweep trial or
worker on the same machine opens it with ``np.load(mmap_mode="r")``: nothing is parsed,
feature arrays are not read into memory, and a batch reads only its own rows from disk.

Cache key. An entry is named by the source file's content hash (BLAKE2b-128 of every byte),
the reader's version (``READER_VERSION``, bumped whenever ``read_mmsa_pickle``'s output could
change) and the request (kind, modalities, splits, require_labels), so a changed file or a
changed reader never reuses stale arrays. Hashing a multi-GB file takes a few seconds, so the
hash is computed once per file state: it is recorded beside the file's size, mtime (ns) and
inode, and reused while all three are unchanged (the same pre-check ``make`` and ``rsync``
rely on). A file whose bytes change while size, mtime and inode are all kept identical (a
deliberate ``touch -d`` back to the old time after an in-place edit of the same length) is
not noticed; ``msakit.data.feature_cache.clear()`` or deleting ``$MSAKIT_CACHE/features``
forces a rebuild. A touched but unchanged file is re-hashed and keeps its cache.

An entry made from a file's earlier contents is deleted when the new one is written.

Damage. Opening checks that the manifest parses and that every array file is present with
exactly the size, shape and dtype the manifest records (a truncated or missing file, or a
half-written entry, is caught); a damaged entry is set aside and rebuilt from the source with
a warning. Bit flips inside an intact-sized array are not detected (checking them would mean
reading every byte, which is what the cache exists to avoid).

Concurrency. An entry is written into a private temporary directory and renamed into place
in one step; a writer that loses the race discards its copy and opens the winner's. Readers
never see a partial entry.

Memory. ``audio``/``vision`` are read-only memmaps; ids, text, labels and lengths (small) are
loaded into memory. Arrays are float32/int64 as the reader produced them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from msakit.data.types import FeatureData, Split

# Bump when read_mmsa_pickle's output (values, dtypes, repairs, fields) changes.
READER_VERSION = 1
FORMAT = "msakit-feature-cache"
_HASH_CHUNK = 8 << 20
_ANNOUNCE_BYTES = 256 << 20
_ARRAY_FIELDS = ("audio", "audio_lengths", "vision", "vision_lengths")
_MAPPED = ("audio", "vision")  # large: memory-mapped; the rest is read into memory


def enabled() -> bool:
    """The cache is on unless ``MSAKIT_FEATURE_CACHE=0``."""
    return os.environ.get("MSAKIT_FEATURE_CACHE", "1").lower() not in ("0", "false", "no", "off")


def root() -> Path:
    from msakit.data.locations import cache_dir

    return cache_dir() / "features"


def clear() -> None:
    """Delete every cached dataset (they are rebuilt on next use)."""
    shutil.rmtree(root(), ignore_errors=True)


# ---- the source file's content hash, computed once per file state ----------------------------
def content_hash(path: Path) -> str:
    """BLAKE2b-128 of the file's bytes (streamed; memory stays at one chunk)."""
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _stat_key(path: Path) -> dict:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "inode": st.st_ino}


def source_hash(path: Path) -> str:
    """The content hash of ``path``, re-computed only when its size, mtime or inode changed."""
    real = path.resolve()
    record = root() / "fingerprints" / (hashlib.blake2b(str(real).encode(), digest_size=12).hexdigest() + ".json")
    stat = _stat_key(real)
    try:
        saved = json.loads(record.read_text())
        if saved.get("path") == str(real) and saved.get("stat") == stat and isinstance(saved.get("hash"), str):
            return saved["hash"]
    except (OSError, ValueError):
        pass
    digest = content_hash(real)
    if _stat_key(real) == stat:  # not modified while hashing
        _atomic_text(record, json.dumps({"path": str(real), "stat": stat, "hash": digest}))
    return digest


def _atomic_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as f:
            f.write(text)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


# ---- entries ---------------------------------------------------------------------------------
def _request(kind, modalities, splits, require_labels) -> dict:
    return {
        "kind": None if kind is None else str(kind).lower(),
        "modalities": None if modalities is None else sorted(set("".join(modalities).replace(",", "").replace("+", "").replace(" ", "").lower())),
        "splits": list(splits),
        "require_labels": bool(require_labels),
    }


def entry_dir(path: Path, digest: str, request: dict) -> Path:
    key = hashlib.blake2b(json.dumps([digest, READER_VERSION, request], sort_keys=True).encode(), digest_size=10).hexdigest()
    return root() / f"{path.stem}-{key}"


def _write_entry(directory: Path, data: FeatureData, meta: dict) -> None:
    splits = {}
    for name, split in data.splits.items():
        arrays = {}
        fields = {f: getattr(split, f) for f in _ARRAY_FIELDS}
        fields.update({f"labels_{k}": v for k, v in split.labels.items()})
        for field, array in fields.items():
            if array is None:
                continue
            file = f"{name}.{field}.npy"
            np.save(directory / file, np.ascontiguousarray(array))
            arrays[field] = {"file": file, "shape": list(array.shape), "dtype": str(array.dtype), "bytes": (directory / file).stat().st_size}
        text = {"ids": split.ids, "raw_text": split.raw_text}
        (directory / f"{name}.text.json").write_text(json.dumps(text, ensure_ascii=False))
        splits[name] = {"n": len(split), "arrays": arrays, "text": f"{name}.text.json"}
    manifest = {
        "format": FORMAT,
        "reader_version": READER_VERSION,
        **meta,
        "aligned": data.aligned,
        "nonfinite_replaced": [[s, k, c] for (s, k), c in data.nonfinite_replaced.items()],
        "splits": splits,
        "written": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    # The manifest last: an entry without one is incomplete.
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=1))


class DamagedCache(Exception):
    pass


def _inside(directory: Path, name: Any) -> Path:
    """The file ``name`` of an entry: a plain file name, not a link, inside ``directory``. A
    manifest is data the reader checks: a path that climbs out (``..``, absolute, a link) is
    damage, never followed."""
    if not isinstance(name, str) or not name or name != Path(name).name or name in (".", "..") or "\\" in name:
        raise DamagedCache(f"the manifest names {name!r}, which is not a file of the entry")
    file = directory / name
    if file.is_symlink():
        raise DamagedCache(f"{name} is a link, not a file of the entry")
    if file.exists() and file.resolve().parent != directory.resolve():
        raise DamagedCache(f"{name} lies outside the entry")
    return file


def _open_entry(directory: Path, source: str, expect: dict | None = None) -> tuple[FeatureData, list[str]]:
    if directory.is_symlink():
        raise DamagedCache("the entry is a link, not a folder of the cache")
    try:
        manifest = json.loads(_inside(directory, "manifest.json").read_text())
    except FileNotFoundError:
        raise DamagedCache("manifest.json is missing") from None
    except (OSError, ValueError) as error:
        raise DamagedCache(f"manifest.json is unreadable ({error})") from None
    if not isinstance(manifest, dict):
        raise DamagedCache(f"manifest.json holds a {type(manifest).__name__}, not an object")
    if manifest.get("format") != FORMAT or manifest.get("reader_version") != READER_VERSION:
        raise DamagedCache("manifest.json has another format or reader version")
    for key, value in (expect or {}).items():
        if manifest.get(key) != value:
            raise DamagedCache(f"manifest.json records another {key} than this entry's name says")
    try:
        splits = {}
        if expect is not None and sorted(manifest["splits"]) != sorted(s for s in expect["request"]["splits"] if s in manifest["splits"]):
            raise DamagedCache("manifest.json lists splits that were not asked for")
        for name, info in manifest["splits"].items():
            loaded = {}
            for field, spec in info["arrays"].items():
                if field not in _ARRAY_FIELDS and not field.startswith("labels_"):
                    raise DamagedCache(f"manifest.json lists an unknown array {field!r}")
                file = _inside(directory, spec["file"])
                if not file.exists():
                    raise DamagedCache(f"{spec['file']} is missing")
                if file.stat().st_size != spec["bytes"]:
                    raise DamagedCache(f"{spec['file']} has {file.stat().st_size} bytes, the manifest says {spec['bytes']}")
                array = np.load(file, mmap_mode="r" if field in _MAPPED else None, allow_pickle=False)
                if list(array.shape) != spec["shape"] or str(array.dtype) != spec["dtype"]:
                    raise DamagedCache(f"{spec['file']} holds {array.dtype}{list(array.shape)}, the manifest says {spec['dtype']}{spec['shape']}")
                loaded[field] = array
            text = json.loads(_inside(directory, info["text"]).read_text())
            if len(text["ids"]) != info["n"]:
                raise DamagedCache(f"{info['text']} has {len(text['ids'])} ids, the manifest says {info['n']}")
            splits[name] = Split(
                name=name,
                ids=text["ids"],
                labels={k[len("labels_"):]: v for k, v in loaded.items() if k.startswith("labels_")},
                raw_text=text["raw_text"],
                **{f: loaded.get(f) for f in _ARRAY_FIELDS},
            )
        nonfinite = {(s, k): c for s, k, c in manifest["nonfinite_replaced"]}
        data = FeatureData(source=source, splits=splits, aligned=bool(manifest["aligned"]), nonfinite_replaced=nonfinite)
        return data, list(manifest.get("warnings", []))
    except DamagedCache:
        raise
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise DamagedCache(f"{type(error).__name__}: {error}") from None


def _set_aside(directory: Path) -> None:
    if directory.is_symlink():  # never follow it: remove the link itself
        directory.unlink(missing_ok=True)
        return
    trash = directory.with_name(f".{directory.name}.damaged-{os.getpid()}-{time.monotonic_ns()}")
    try:
        os.rename(directory, trash)
    except FileNotFoundError:
        return
    except OSError:
        shutil.rmtree(directory, ignore_errors=True)
        return
    shutil.rmtree(trash, ignore_errors=True)


def _drop_superseded(source: Path, digest: str, request: dict, keep: Path) -> None:
    """Delete entries of the same file and request made from its earlier contents (a process
    still mapping one keeps reading it: the files go when it unmaps them)."""
    real = str(source.resolve())
    for entry in root().glob(f"{source.stem}-*"):
        if entry == keep or not entry.is_dir():
            continue
        try:
            manifest = json.loads((entry / "manifest.json").read_text())
        except (OSError, ValueError):
            continue
        if manifest.get("source") == real and manifest.get("request") == request and manifest.get("source_hash") != digest:
            _set_aside(entry)


def cached_read(path: str | os.PathLike[str], *, kind=None, modalities=None, splits=("train", "valid", "test"), require_labels=True, reader=None) -> FeatureData:
    """``read_mmsa_pickle(path, ...)`` through the cache (same arguments, same result).

    Any reader error (bad file, bad request) is raised exactly as the reader raises it and
    nothing is cached; a cache problem (unwritable directory, full disk) falls back to the
    plain read with a warning.
    """
    from msakit.data.mmsa import read_mmsa_pickle

    reader = reader or read_mmsa_pickle
    source = Path(path)
    if not enabled() or not source.is_file():
        return reader(path, kind=kind, modalities=modalities, splits=splits, require_labels=require_labels)
    try:
        return _cached_read(path, source, kind, modalities, splits, require_labels, reader)
    except _CacheUnusable as problem:
        warnings.warn(f"the feature cache in {root()} cannot be used ({problem}); reading {path} without it. "
                      "Set MSAKIT_CACHE to a writable folder (or MSAKIT_FEATURE_CACHE=0) to silence this", UserWarning, stacklevel=2)
        return reader(path, kind=kind, modalities=modalities, splits=splits, require_labels=require_labels)


class _CacheUnusable(Exception):
    """The cache location itself cannot be used (not a folder, not writable): read plainly."""


def _cached_read(path, source: Path, kind, modalities, splits, require_labels, reader) -> FeatureData:
    shown = str(path)
    request = _request(kind, modalities, splits, require_labels)
    try:
        digest = source_hash(source)
    except OSError as error:
        raise _CacheUnusable(f"{error.strerror or error}") from None
    directory = entry_dir(source, digest, request)
    expect = {"source_hash": digest, "request": request}
    if directory.exists() or directory.is_symlink():
        try:
            data, messages = _open_entry(directory, shown, expect)
            for message in messages:
                warnings.warn(message, UserWarning, stacklevel=3)
            return data
        except DamagedCache as problem:
            warnings.warn(f"{directory}: damaged feature cache ({problem}); rebuilding it from {shown}", UserWarning, stacklevel=3)
            _set_aside(directory)

    if source.stat().st_size >= _ANNOUNCE_BYTES:  # a long first read: say what is happening once
        print(f"msakit: parsing {shown} once; later runs open its memory-mapped cache in {directory}", file=sys.stderr, flush=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = reader(path, kind=kind, modalities=modalities, splits=splits, require_labels=require_labels)
    messages = [str(w.message) for w in caught]
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
        temp = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}.tmp-"))
        try:
            _write_entry(temp, data, {"source": str(source.resolve()), "source_hash": digest, "request": request, "warnings": messages})
            os.chmod(temp, 0o755)
            try:
                os.rename(temp, directory)  # atomic; fails if another writer got there first
            except OSError:
                if not (directory / "manifest.json").exists():
                    raise
                shutil.rmtree(temp, ignore_errors=True)
        except BaseException:
            shutil.rmtree(temp, ignore_errors=True)
            raise
    except OSError as error:
        warnings.warn(f"{directory}: could not write the feature cache ({error.strerror or error}); continuing without it "
                      "(set MSAKIT_CACHE to a writable folder, or MSAKIT_FEATURE_CACHE=0)", UserWarning, stacklevel=3)
        return data
    _drop_superseded(source, digest, request, directory)
    # Return the memory-mapped form, so the first run uses as little memory as later ones.
    try:
        return _open_entry(directory, shown, expect)[0]
    except DamagedCache:
        return data


__all__ = ["READER_VERSION", "cached_read", "clear", "content_hash", "enabled", "root", "source_hash"]
