"""Turn what a user passes as a path into a filesystem and a sorted list of files.

A path may be a local path, any URI pyarrow.fs understands (`s3://`, `gs://`, `file://`), a
directory (listed recursively, skipping hidden `_`/`.` entries as Spark and Hive do), a glob,
or a list of any of these. A path that matches nothing is an error that names it.
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

from ..errors import SourceNotFoundError, close_matches

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

    @property
    def paths(self) -> list[str]:
        return [f.path for f in self.files]

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)


def filesystem_for(path: str, filesystem: pafs.FileSystem | None = None) -> tuple[pafs.FileSystem, str]:
    if filesystem is not None:
        return filesystem, path
    if "://" in path:
        return pafs.FileSystem.from_uri(path)
    return pafs.LocalFileSystem(), os.path.abspath(os.path.expanduser(path))


def _is_hidden(relative: str) -> bool:
    return any(part.startswith(("_", ".")) for part in relative.split("/") if part)


def _entry(info: pafs.FileInfo) -> FileEntry:
    return FileEntry(info.path, info.size or 0, info.mtime_ns)


def _list_directory(fs: pafs.FileSystem, directory: str) -> list[FileEntry]:
    infos = fs.get_file_info(pafs.FileSelector(directory, recursive=True))
    prefix = directory.rstrip("/") + "/"
    return [
        _entry(info) for info in infos
        if info.type == pafs.FileType.File and not _is_hidden(info.path[len(prefix):])
    ]


def _glob(fs: pafs.FileSystem, pattern: str) -> list[FileEntry]:
    first_glob = min(pattern.find(c) for c in GLOB_CHARS if c in pattern)
    root = pattern[:first_glob].rsplit("/", 1)[0] or "/"
    try:
        infos = fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
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
    for shown in paths:
        _, path = filesystem_for(shown, filesystem)
        if any(c in path for c in GLOB_CHARS):
            found = _glob(fs, path)
            if not found:
                raise SourceNotFoundError(f"The glob {shown!r} matches no file. Check the pattern and the directory.")
            entries += found
            roots.append(path[: min(path.find(c) for c in GLOB_CHARS if c in path)].rsplit("/", 1)[0])
            continue
        info = fs.get_file_info(path)
        if info.type == pafs.FileType.NotFound:
            raise _not_found(fs, path, shown)
        if info.type == pafs.FileType.Directory:
            found = _list_directory(fs, path)
            if not found:
                raise SourceNotFoundError(f"The directory {shown!r} contains no data files.")
            entries += found
            roots.append(path.rstrip("/"))
        else:
            entries.append(_entry(info))
            roots.append(path.rsplit("/", 1)[0])
    unique = {e.path: e for e in entries}
    base = posixpath.commonpath(roots) if roots else None
    return ResolvedFiles(fs, tuple(unique[p] for p in sorted(unique)), base)


NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"


def _partition_segments(path: str, base_dir: str) -> list[tuple[str, str]]:
    relative = path[len(base_dir):].lstrip("/")
    return [tuple(segment.split("=", 1)) for segment in posixpath.dirname(relative).split("/") if "=" in segment]


def hive_partition_schema(files: ResolvedFiles) -> pa.Schema | None:
    """The `key=value` directory columns under the base directory, typed from their values."""
    if files.base_dir is None:
        return None
    values: dict[str, list[str]] = {}
    for path in files.paths:
        for name, value in _partition_segments(path, files.base_dir):
            values.setdefault(name, []).append(value)
    if not values:
        return None
    return pa.schema([pa.field(name, _infer_partition_type(v)) for name, v in values.items()])


def partition_values(path: str, base_dir: str, schema: pa.Schema) -> dict:
    """The typed partition values encoded in one file's path."""
    found = dict(_partition_segments(path, base_dir))
    result = {}
    for field in schema:
        raw = found.get(field.name)
        if raw is None or raw == NULL_PARTITION:
            result[field.name] = None
        else:
            text = unquote(raw)
            result[field.name] = int(text) if pa.types.is_integer(field.type) else (
                float(text) if pa.types.is_floating(field.type) else text)
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
