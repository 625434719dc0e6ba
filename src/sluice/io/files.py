"""Turn what a user passes as a path into a filesystem and a sorted list of files.

A path may be a local path, any URI pyarrow.fs understands (`s3://`, `gs://`, `file://`), a
directory (listed recursively, skipping hidden `_`/`.` entries as Spark and Hive do), a glob,
or a list of any of these. A path that matches nothing is an error that names it.

A directory that sluice wrote holds a commit log (`_sluice_manifest_*.json` files, see
`io/manifest.py`); its data is then exactly the files the committed manifests list,
so files staged or half-published by a crashed write are never read. That also holds when a
hive partition directory under such a root is read directly. The log also records the types of
the partition columns, so `key=value` directories parse back to the values written (without a
log, types are inferred from the values: integers, then floats, then strings). Listing is retried on
transient errors (`io/retry.py`).
"""

from __future__ import annotations

import fnmatch
import os
import posixpath
from dataclasses import dataclass
from typing import Sequence
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.fs as pafs

from ..errors import SourceError, SourceNotFoundError, close_matches
from .manifest import ManifestLog, has_log, list_root, read_log
from .retry import retrying

GLOB_CHARS = "*?["


@dataclass(frozen=True)
class FileEntry:
    path: str
    size: int
    mtime_ns: int | None


@dataclass(frozen=True)
class ResolvedFiles:
    filesystem: pafs.FileSystem
    files: tuple[FileEntry, ...]
    base_dir: str | None  # the common root, where hive partition directories start
    requested: tuple[str, ...] = ()  # the paths, directories and globs as given, to list them again
    partition_types: pa.Schema | None = None  # the partition columns' types, as the commit log recorded them

    @property
    def paths(self) -> list[str]:
        return [f.path for f in self.files]

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def count(self) -> str:
        return f"{len(self.files)} file" + ("" if len(self.files) == 1 else "s")

    @property
    def location(self) -> str:
        """Where the files are, as explain() and progress show it: a path given alone as it was given, else
        the root the files share."""
        if len(self.requested) == 1:
            return self.requested[0]
        return self.base_dir or (self.files[0].path if self.files else ", ".join(self.requested))


def filesystem_for(path: str, filesystem: pafs.FileSystem | None = None) -> tuple[pafs.FileSystem, str]:
    if filesystem is not None:
        return filesystem, path
    if "://" in path:
        return pafs.FileSystem.from_uri(path)
    return pafs.LocalFileSystem(), os.path.abspath(os.path.expanduser(path))


def is_hidden(relative: str) -> bool:
    return any(part.startswith(("_", ".")) for part in relative.split("/") if part)


def _entry(info: pafs.FileInfo) -> FileEntry:
    return FileEntry(info.path, info.size or 0, info.mtime_ns)


def _list_directory(fs: pafs.FileSystem, directory: str, shown: str) -> tuple[list[FileEntry], pa.Schema | None]:
    """The directory's data files, and the partition types its commit log recorded (None without a log)."""
    def listing():
        return retrying(lambda: fs.get_file_info(pafs.FileSelector(directory, recursive=True)),
                        what=f"listing {shown!r}")

    infos = listing()
    prefix = directory.rstrip("/") + "/"
    root = directory if has_log(infos, directory) else _managed_root(fs, directory)
    if root is None:
        return [
            _entry(info) for info in infos
            if info.type == pafs.FileType.File and not is_hidden(info.path[len(prefix):])
        ], None
    under = "" if root == directory else directory[len(root) + 1:].rstrip("/")
    log = read_log(fs, root, infos if root == directory else None)
    try:
        return _committed_files(root, infos, log, under, shown), log.partition_schema
    except SourceError:  # a commit (and its garbage collection) came between the listing and the log: look again
        infos = listing()
        log = read_log(fs, root, infos if root == directory else None)
        return _committed_files(root, infos, log, under, shown), log.partition_schema


def _managed_root(fs: pafs.FileSystem, directory: str) -> str | None:
    """For a hive partition directory (`.../key=value`), the sluice-written dataset root above it, if any."""
    path = directory.rstrip("/")
    while "=" in path.rsplit("/", 1)[-1] and "/" in path:
        path = path.rsplit("/", 1)[0]
        if has_log(list_root(fs, path), path):
            return path
    return None


def _committed_files(root: str, infos: list[pafs.FileInfo], log: ManifestLog, under: str,
                     shown: str) -> list[FileEntry]:
    """The files the commit log under `root` lists (those below `under`, if given), with sizes."""
    if not log.committed:
        runs = ", ".join(log.pending) or "unknown"
        raise SourceNotFoundError(
            f"The directory {shown!r} holds no committed data: the first write into it (run {runs}) did not "
            f"finish, and its files stay invisible. Re-run the write that produces it.")
    found = {info.path: info for info in infos if info.type == pafs.FileType.File}
    entries = []
    for relative in log.live():
        if under and not relative.startswith(under + "/"):
            continue
        info = found.get(f"{root}/{relative}")
        if info is None:
            raise SourceError(
                f"The file {root + '/' + relative!r} is part of the dataset {root!r} by its commit log "
                f"(the _sluice_manifest_* files there), but it is gone. Something other than sluice deleted it; "
                f"restore it, or re-write the dataset with mode='overwrite'.")
        entries.append(_entry(info))
    return entries


def _glob(fs: pafs.FileSystem, pattern: str) -> list[FileEntry]:
    first_glob = min(pattern.find(c) for c in GLOB_CHARS if c in pattern)
    root = pattern[:first_glob].rsplit("/", 1)[0] or "/"
    try:
        infos = retrying(lambda: fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True)),
                         what=f"listing {root!r} for the glob {pattern!r}")
    except OSError:
        return []
    return [_entry(i) for i in infos if i.type == pafs.FileType.File and fnmatch.fnmatchcase(i.path, pattern)]


def _not_found(fs: pafs.FileSystem, path: str, shown: str) -> SourceNotFoundError:
    parent = path.rstrip("/").rsplit("/", 1)[0] or "/"
    hint = ""
    try:
        siblings = [i.base_name for i in fs.get_file_info(pafs.FileSelector(parent, allow_not_found=True))]
        matches = close_matches(path.rstrip("/").rsplit("/", 1)[-1], siblings)
        if matches:
            hint = f" Did you mean {', '.join(repr(parent.rstrip('/') + '/' + m) for m in matches)}?"
    except OSError:
        pass
    return SourceNotFoundError(f"No such file or directory: {shown!r}.{hint} Check the path and that the files exist.")


def resolve_files(paths: str | os.PathLike | Sequence[str | os.PathLike],
                  filesystem: pafs.FileSystem | None = None) -> ResolvedFiles:
    """List the files behind `paths`, sorted, each with its size and modification time."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    paths = [os.fspath(p) for p in paths]
    if not paths:
        raise SourceNotFoundError("No input paths were given. Pass a file, a directory, a glob or a list of them.")
    fs, _ = filesystem_for(paths[0], filesystem)
    entries: list[FileEntry] = []
    roots: list[str] = []
    typed: list[pa.Field] = []
    for shown in paths:
        _, path = filesystem_for(shown, filesystem)
        if any(c in path for c in GLOB_CHARS):
            found = _glob(fs, path)
            if not found:
                raise SourceNotFoundError(f"The glob {shown!r} matches no file. Check the pattern and the directory.")
            entries += found
            roots.append(path[: min(path.find(c) for c in GLOB_CHARS if c in path)].rsplit("/", 1)[0])
            continue
        info = retrying(lambda path=path: fs.get_file_info(path), what=f"looking up {shown!r}")
        if info.type == pafs.FileType.NotFound:
            raise _not_found(fs, path, shown)
        if info.type == pafs.FileType.Directory:
            found, partition_types = _list_directory(fs, path, shown)
            typed += [f for f in partition_types or () if f.name not in {t.name for t in typed}]
            if not found:
                raise SourceNotFoundError(f"The directory {shown!r} contains no data files.")
            entries += found
            roots.append(path.rstrip("/"))
        else:
            entries.append(_entry(info))
            roots.append(path.rsplit("/", 1)[0])
    unique = {e.path: e for e in entries}
    base = posixpath.commonpath(roots) if roots else None
    return ResolvedFiles(fs, tuple(unique[p] for p in sorted(unique)), base, tuple(paths),
                         pa.schema(typed) if typed else None)


NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"


def _partition_segments(path: str, base_dir: str) -> list[tuple[str, str]]:
    """(column name, raw value) for each `key=value` directory of `path`; names decoded as sluice encodes them."""
    relative = path[len(base_dir):].lstrip("/")
    return [(unquote(name), value) for name, value in
            (segment.split("=", 1) for segment in posixpath.dirname(relative).split("/") if "=" in segment)]


def hive_partition_schema(files: ResolvedFiles, file_columns: Sequence[str] = ()) -> pa.Schema | None:
    """The `key=value` directory columns under the base directory, typed as the commit log recorded them, else
    from their values. A key that is also a column in the files is left out: the files' column is kept."""
    if files.base_dir is None:
        return None
    values: dict[str, list[str]] = {}
    for path in files.paths:
        for name, value in _partition_segments(path, files.base_dir):
            values.setdefault(name, []).append(value)
    recorded = {f.name: f.type for f in files.partition_types or () if _parses_from_path(f.type)}
    fields = [pa.field(name, recorded.get(name) or _infer_partition_type(v)) for name, v in values.items()
              if name not in set(file_columns)]
    return pa.schema(fields) if fields else None


def _parses_from_path(dtype: pa.DataType) -> bool:
    """Types whose values sluice writes into a directory name in a form that parses back exactly."""
    return (pa.types.is_string(dtype) or pa.types.is_large_string(dtype) or pa.types.is_integer(dtype)
            or pa.types.is_floating(dtype) or pa.types.is_boolean(dtype) or pa.types.is_date(dtype))


def partition_values(path: str, base_dir: str, schema: pa.Schema) -> dict:
    """The typed partition values encoded in one file's path."""
    found = dict(_partition_segments(path, base_dir))
    result = {}
    for field in schema:
        raw = found.get(field.name)
        if raw is None or raw == NULL_PARTITION:
            result[field.name] = None
        elif pa.types.is_integer(field.type):
            result[field.name] = int(unquote(raw))
        elif pa.types.is_floating(field.type):
            result[field.name] = float(unquote(raw))
        elif pa.types.is_string(field.type) or pa.types.is_large_string(field.type):
            result[field.name] = unquote(raw)
        else:
            result[field.name] = pa.array([unquote(raw)]).cast(field.type)[0].as_py()
    return result


def _infer_partition_type(values: list[str]) -> pa.DataType:
    present = [unquote(v) for v in values if v != NULL_PARTITION]
    for cast, dtype in ((int, pa.int64()), (float, pa.float64())):
        try:
            [cast(v) for v in present]
            return dtype
        except ValueError:
            continue
    return pa.string()
