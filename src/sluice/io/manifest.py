"""The commit log of a written dataset: which files are its data, committed by which runs.

A directory written by sluice keeps a log beside its data: each committed write adds one
manifest, `<dest>/_sluice_manifest_<sequence>-<run id>.json`, listing the files it published
(paths relative to `<dest>`, with rows and bytes) and how it changes what was there (its
mode). The names start with `_`, so other engines (Spark, DuckDB, pyarrow) skip them.

- `overwrite` starts the dataset afresh; `append` (and `error`) add files;
- `overwrite-partitions` first drops the files of the partition directories it writes;
- `adopt` takes in files that were there before sluice managed the directory.

Replaying the manifests in (sequence, run id) order gives the *live* files: exactly what
readers read. A write publishes its files before its manifest exists, so until the manifest
lands (one atomic object) none of them is visible; a crash at any point leaves the dataset
as the last committed manifest describes it. Before publishing, a write leaves an intent
file, `_sluice_pending_<run id>.json`: it marks the directory as managed even when the first
write into it crashed half-way, so readers do not mistake half-published files for data.

Commits are serialized: a writer first claims the next sequence with a put-if-absent
`_sluice_claim_<sequence>` file (`io/commit.py`), and only the claimant writes that sequence's
manifest; a writer that loses the claim retries on a fresh view of the log. Logs written before
claims existed may hold two manifests with one sequence; the order (sequence, run id) decides
between them, as it always did. A manifest also records the types of its partition columns
(`partition_schema`), so a reader parses `k=007` back as the string it was; older manifests
lack it and readers infer the types from the values, as before.
"""

from __future__ import annotations

import base64
import json
import posixpath
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.fs as pafs

from ..errors import SourceError
from .retry import retrying

MANIFEST_PREFIX = "_sluice_manifest_"
PENDING_PREFIX = "_sluice_pending_"
CLAIM_PREFIX = "_sluice_claim_"
STAGING_DIR = "_sluice_staging"
SUCCESS_MARKER = "_SUCCESS"
MANIFEST_FORMAT = "sluice-manifest/1"
_COMMITTED = re.compile(r"^_sluice_manifest_(\d{10})-(.+)\.json$")
_PENDING = re.compile(r"^_sluice_pending_(.+)\.json$")
_CLAIM = re.compile(r"^_sluice_claim_(\d{10})(?:-(.+))?\.json$")  # local: no run id (its content names it)


@dataclass(frozen=True)
class ManifestFile:
    path: str  # relative to the dataset root, "/"-separated
    rows: int
    bytes: int


@dataclass(frozen=True)
class Manifest:
    sequence: int
    run_id: str
    mode: str  # overwrite | append | error | overwrite-partitions | adopt
    files: tuple[ManifestFile, ...]
    format: str = ""
    partition_by: tuple[str, ...] | None = None  # None: unknown (adopted files)
    replaced_partitions: tuple[str, ...] = ()
    partition_schema: pa.Schema | None = None  # the partition columns' types; None in older manifests
    committed_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat())

    @property
    def name(self) -> str:
        return manifest_name(self.sequence, self.run_id)

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.files)

    @property
    def bytes(self) -> int:
        return sum(f.bytes for f in self.files)

    def to_json(self) -> bytes:
        return json.dumps({
            "format": MANIFEST_FORMAT, "sequence": self.sequence, "run_id": self.run_id, "mode": self.mode,
            "data_format": self.format, "committed_at": self.committed_at,
            "partition_by": None if self.partition_by is None else list(self.partition_by),
            "replaced_partitions": list(self.replaced_partitions),
            **({} if self.partition_schema is None else {
                "partition_types": {f.name: str(f.type) for f in self.partition_schema},  # for people
                "partition_schema": base64.b64encode(self.partition_schema.serialize().to_pybytes()).decode()}),
            "rows": self.rows, "bytes": self.bytes,
            "files": [{"path": f.path, "rows": f.rows, "bytes": f.bytes} for f in self.files],
        }, indent=1).encode()

    @staticmethod
    def from_json(data: bytes, where: str) -> Manifest:
        try:
            raw = json.loads(data)
            if raw.get("format") != MANIFEST_FORMAT:
                raise ValueError(f"unknown manifest format {raw.get('format')!r}")
            return Manifest(
                sequence=int(raw["sequence"]), run_id=str(raw["run_id"]), mode=str(raw["mode"]),
                files=tuple(ManifestFile(str(f["path"]), int(f["rows"]), int(f["bytes"])) for f in raw["files"]),
                format=str(raw.get("data_format", "")),
                partition_by=None if raw.get("partition_by") is None else tuple(raw["partition_by"]),
                replaced_partitions=tuple(raw.get("replaced_partitions", ())),
                partition_schema=_schema_from_text(raw.get("partition_schema")),
                committed_at=str(raw.get("committed_at", "")))
        except (ValueError, KeyError, TypeError, pa.ArrowInvalid) as exc:
            raise SourceError(
                f"The commit manifest {where!r} cannot be read ({exc}). It was damaged or written by another "
                f"tool. Restore it, or delete the {MANIFEST_PREFIX}* and {PENDING_PREFIX}* files beside it to read "
                f"the directory as plain files (files of unfinished writes become visible then).") from None


def _schema_from_text(text: str | None) -> pa.Schema | None:
    if text is None:
        return None
    return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(text)))


def manifest_name(sequence: int, run_id: str) -> str:
    return f"{MANIFEST_PREFIX}{sequence:010d}-{run_id}.json"


def pending_name(run_id: str) -> str:
    return f"{PENDING_PREFIX}{run_id}.json"


def manifest_key(name: str) -> tuple[int, str] | None:
    """(sequence, run id) for a manifest's file name, None for other names."""
    match = _COMMITTED.match(name)
    return None if match is None else (int(match.group(1)), match.group(2))


def claim_name(sequence: int, run_id: str | None = None) -> str:
    """The claim on `sequence`: without a run id where the filesystem can create it only if absent."""
    return f"{CLAIM_PREFIX}{sequence:010d}{'' if run_id is None else '-' + run_id}.json"


def parse_claim(name: str) -> tuple[int, str | None] | None:
    """(sequence, run id or None) for a claim's file name, None for other names."""
    match = _CLAIM.match(name)
    return None if match is None else (int(match.group(1)), match.group(2))


def is_log_file(name: str) -> bool:
    """Whether a file name (not a path) is part of a commit log."""
    return bool(_COMMITTED.match(name) or _PENDING.match(name) or _CLAIM.match(name))


@dataclass(frozen=True)
class ManifestLog:
    """The manifests found under one dataset root, in commit order."""

    root: str
    committed: tuple[Manifest, ...] = ()
    pending: tuple[str, ...] = ()  # run ids with an intent file and no manifest yet
    claims: tuple[tuple[int, str | None], ...] = ()  # (sequence, run id or None): sequences taken by a writer

    @property
    def managed(self) -> bool:
        return bool(self.committed or self.pending)

    @property
    def next_sequence(self) -> int:
        """One past every sequence taken: committed, or claimed by a writer that may still commit it."""
        return max([m.sequence for m in self.committed] + [c[0] for c in self.claims], default=-1) + 1

    def find(self, run_id: str) -> Manifest | None:
        return next((m for m in self.committed if m.run_id == run_id), None)

    @property
    def partition_by(self) -> tuple[str, ...] | None:
        known = [m.partition_by for m in self.committed if m.partition_by is not None and m.mode != "adopt"]
        return known[-1] if known else None

    @property
    def partition_schema(self) -> pa.Schema | None:
        """The partition columns' types as the latest write that recorded them wrote them."""
        known = [m.partition_schema for m in self.committed if m.partition_schema is not None]
        return known[-1] if known else None

    def live(self) -> dict[str, ManifestFile]:
        """The files that make up the dataset now: the manifests replayed in order."""
        files: dict[str, ManifestFile] = {}
        for manifest in self.committed:
            if manifest.mode == "overwrite":
                files = {}
            elif manifest.mode == "overwrite-partitions":
                replaced = set(manifest.replaced_partitions)
                files = {p: f for p, f in files.items() if posixpath.dirname(p) not in replaced}
            for f in manifest.files:
                files[f.path] = f
        return files


def _read_bytes(fs: pafs.FileSystem, path: str) -> bytes:
    with fs.open_input_stream(path) as stream:
        return stream.read()


def read_log(fs: pafs.FileSystem, root: str, infos: list[pafs.FileInfo] | None = None) -> ManifestLog:
    """Read the manifests in `root`; `infos` may hold a listing of root that includes them.

    A manifest that vanishes between the listing and the read was removed by a garbage collection
    after a later overwrite: the log is listed again, up to a few times.
    """
    root = root.rstrip("/")
    for _ in range(LOG_READ_ATTEMPTS):
        log = _read_listed_log(fs, root, list_root(fs, root) if infos is None else infos)
        if log is not None:
            return log
        infos = None
    raise SourceError(f"The commit log of {root!r} kept changing while it was read ({LOG_READ_ATTEMPTS} tries): "
                      f"writers are committing to it and removing old manifests. Read it again.")


LOG_READ_ATTEMPTS = 5


def _read_listed_log(fs: pafs.FileSystem, root: str, infos: list[pafs.FileInfo]) -> ManifestLog | None:
    paths, pending, claims = [], [], []
    for info in infos:
        if info.type != pafs.FileType.File or posixpath.dirname(info.path) != root:
            continue
        if _COMMITTED.match(info.base_name):
            paths.append(info.path)
        elif _PENDING.match(info.base_name):
            pending.append(_PENDING.match(info.base_name).group(1))
        elif _CLAIM.match(info.base_name):
            claims.append(parse_claim(info.base_name))

    def load(path: str) -> Manifest | None:
        try:
            data = retrying(lambda: _read_bytes(fs, path), what=f"reading the manifest {path!r}")
        except FileNotFoundError:
            return None
        return Manifest.from_json(data, path)

    if len(paths) > 4:  # an object store answers each read in tens of milliseconds: overlap them
        with ThreadPoolExecutor(max_workers=min(16, len(paths)), thread_name_prefix="sluice-manifest") as pool:
            loaded = list(pool.map(load, paths))
    else:
        loaded = [load(path) for path in paths]
    if any(m is None for m in loaded):
        return None
    committed = sorted(loaded, key=lambda m: (m.sequence, m.run_id))
    done = {m.run_id for m in committed}
    return ManifestLog(root, tuple(committed), tuple(r for r in pending if r not in done), tuple(sorted(claims,
                       key=lambda c: (c[0], c[1] or ""))))


def list_root(fs: pafs.FileSystem, root: str) -> list[pafs.FileInfo]:
    """The entries directly in `root` (not recursive), where the commit log lives."""
    selector = pafs.FileSelector(root.rstrip("/"), allow_not_found=True)
    return retrying(lambda: fs.get_file_info(selector), what=f"listing {root!r}")


def has_log(infos: list[pafs.FileInfo], root: str) -> bool:
    """Whether a listing (of `root`, recursive or not) shows a commit log directly in `root`."""
    root = root.rstrip("/")
    return any(i.type == pafs.FileType.File and is_log_file(i.base_name) and posixpath.dirname(i.path) == root
               for i in infos)
