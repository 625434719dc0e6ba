"""Taking turns at one destination's commit log, and removing what commits superseded once no reader needs it.

Two writers that read the log at the same moment would both draw the same next sequence, and
an overwrite that deletes what its (stale) view of the log does not list deletes the other
writer's files. So:

- **Claims.** Before it writes manifest N, a writer claims N with a put-if-absent file,
  `_sluice_claim_<N>`. On a local filesystem that is an exclusive create (`O_CREAT | O_EXCL`
  fails if the name exists). Object stores reached through pyarrow have no conditional put, so there the claim
  is `_sluice_claim_<N>-<run id>` followed by a listing (S3, GCS and Azure list what was
  written before the listing began): a writer that sees another claim on N, or any manifest
  from N on, has lost; two that see each other both lose and try again, later. On either kind,
  a writer that claimed N and then sees a manifest from N on (its view of the log was stale)
  has lost too. The loser takes a fresh view of the log, checks its mode against it and
  claims the next free sequence; after COMMIT_ATTEMPTS tries it fails with CommitConflictError.
  A claim whose writer died is skipped: sequences may have gaps, replay only needs an order.
- **Garbage collection.** Only files that a committed manifest lists and a later commit
  replaced are deleted, and only once `snapshot_retention_s` has passed since that commit, so a
  reader planned before it reads its snapshot whole. A file no committed manifest lists (another
  writer's, published but not committed yet) is never touched by a commit; `sluice gc --dataset`
  removes such leftovers of crashed writes once they are older than the retention period.
  Manifests before the latest overwrite go once that overwrite is past the retention period.
"""

from __future__ import annotations

import json
import os
import posixpath
import random
import time
from datetime import datetime
from typing import Callable, TypeVar

import pyarrow.fs as pafs

from .. import config as config_module
from ..errors import CommitConflictError, SinkError, SluiceError
from .files import filesystem_for, is_hidden
from .manifest import (
    CLAIM_PREFIX, STAGING_DIR, ManifestLog, claim_name, is_log_file, list_root, manifest_key, parse_claim, read_log,
)
from .retry import retrying

T = TypeVar("T")
COMMIT_ATTEMPTS = 20
Retry = Callable[[Callable[[], T], str], T]


def conflict(shown_path: str) -> CommitConflictError:
    return CommitConflictError(
        f"Other writers committed to {shown_path!r} {COMMIT_ATTEMPTS} times while this write waited for its turn, "
        f"so it gave up; nothing of it was published. Run it again when fewer jobs write there at once.")


def pause_before_retry(attempt: int) -> None:
    """Random backoff, so that two writers that saw each other's claims do not collide again."""
    time.sleep(random.uniform(0, min(0.5, 0.005 * 2 ** attempt)))


def claim_sequence(fs: pafs.FileSystem, root: str, sequence: int, run_id: str, retry: Retry) -> bool:
    """Take sequence `sequence` of the log in `root` for run `run_id`; False if another writer has it."""
    claim = {"sequence": sequence, "run_id": run_id}
    if isinstance(fs, pafs.LocalFileSystem):
        try:
            descriptor = os.open(f"{root}/{claim_name(sequence)}", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(descriptor, "wb") as out:  # only the name matters: nobody reads a claim half-written
            out.write(json.dumps(claim).encode())
        mine = {(sequence, None)}
    else:
        target = f"{root}/{claim_name(sequence, run_id)}"

        def put():
            with fs.open_output_stream(target) as out:
                out.write(json.dumps(claim).encode())

        retry(put, f"claiming commit {sequence} in {root!r}")
        mine = {(sequence, run_id)}
    names = [i.base_name for i in list_root(fs, root) if i.type == pafs.FileType.File]
    claims = {parse_claim(n) for n in names} - {None} - mine
    later = [key for key in map(manifest_key, names) if key is not None and key[0] >= sequence and key[1] != run_id]
    if later or any(c[0] == sequence for c in claims):
        release_claim(fs, root, sequence, run_id, retry)
        return False
    return True


def release_claim(fs: pafs.FileSystem, root: str, sequence: int, run_id: str, retry: Retry) -> None:
    """Remove a claim: after the manifest it guarded landed (which keeps the sequence taken), or after losing."""
    name = claim_name(sequence) if isinstance(fs, pafs.LocalFileSystem) else claim_name(sequence, run_id)
    try:
        retry(lambda: fs.delete_file(f"{root}/{name}"), f"removing the claim {name!r}")
    except FileNotFoundError:
        pass


def _timestamp(text: str) -> float:
    try:
        return datetime.fromisoformat(text).timestamp()
    except (ValueError, TypeError):
        return time.time()  # unknown: as if replaced just now, so it is kept for the retention period


def superseded(log: ManifestLog) -> dict[str, float]:
    """Files committed manifests list that later commits replaced, each with when (epoch seconds) it was replaced."""
    live: set[str] = set()
    replaced: dict[str, float] = {}
    for manifest in log.committed:
        when = _timestamp(manifest.committed_at)
        if manifest.mode == "overwrite":
            dropped = set(live)
        elif manifest.mode == "overwrite-partitions":
            partitions = set(manifest.replaced_partitions)
            dropped = {p for p in live if posixpath.dirname(p) in partitions}
        else:
            dropped = set()
        for path in dropped:
            replaced.setdefault(path, when)
        live -= dropped
        for f in manifest.files:
            live.add(f.path)
            replaced.pop(f.path, None)
    return replaced


def collect_garbage(fs: pafs.FileSystem, root: str, retention_s: float, retry: Retry,
                    on_failure: Callable[[str, BaseException], None], leftovers: bool = False,
                    now: float | None = None, dry_run: bool = False) -> list[str]:
    """Delete what commits to `root` replaced more than `retention_s` ago; return the paths removed.

    With `leftovers`, also files no committed manifest lists (a crashed write's published files)
    that are older than the retention period and that no recent commit intent names.
    """
    root = root.rstrip("/")
    now = time.time() if now is None else now
    log = read_log(fs, root)
    if not log.committed:
        return []
    removed: list[str] = []
    failed = False

    def delete(path: str) -> None:
        nonlocal failed
        if dry_run:
            removed.append(path)
            return
        try:
            retry(lambda: fs.delete_file(path), f"removing {path!r}")
            removed.append(path)
        except FileNotFoundError:
            pass
        except (OSError, SluiceError) as exc:
            failed = True
            on_failure(path, exc)

    for relative, when in sorted(superseded(log).items()):
        if now - when >= retention_s:
            delete(f"{root}/{relative}")
    if leftovers:
        for path in _leftovers(fs, root, log, now - retention_s):
            delete(path)
    overwrites = [m for m in log.committed if m.mode == "overwrite"]
    if overwrites and not failed and now - _timestamp(overwrites[-1].committed_at) >= retention_s:
        latest = overwrites[-1]
        for manifest in log.committed:
            if (manifest.sequence, manifest.run_id) < (latest.sequence, latest.run_id):
                delete(f"{root}/{manifest.name}")
        for sequence, run_id in log.claims:
            if sequence < latest.sequence:
                name = claim_name(sequence) if run_id is None else claim_name(sequence, run_id)
                delete(f"{root}/{name}")
    if not dry_run:
        _remove_empty_directories(fs, root, {posixpath.dirname(p) for p in removed})
    return removed


def _leftovers(fs: pafs.FileSystem, root: str, log: ManifestLog, cutoff: float) -> list[str]:
    """Files under `root` that no committed manifest lists, last changed before `cutoff`, in no recent intent."""
    listed = {f.path for m in log.committed for f in m.files}
    prefix = root + "/"
    infos = fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
    intended: set[str] = set()
    for info in infos:
        name = info.base_name
        if posixpath.dirname(info.path) == root and name.startswith("_sluice_pending_") and info.type == \
                pafs.FileType.File and (info.mtime is None or info.mtime.timestamp() >= cutoff):
            try:
                with fs.open_input_stream(info.path) as stream:
                    intended |= {f["path"] for f in json.loads(stream.read()).get("files", ())}
            except (OSError, ValueError):
                continue
    done = {m.run_id for m in log.committed}
    found = [info.path for info in infos
             if posixpath.dirname(info.path) == root and info.base_name.startswith("_sluice_pending_")
             and info.base_name[len("_sluice_pending_"):-len(".json")] not in done
             and info.mtime is not None and info.mtime.timestamp() < cutoff]  # intents of writes long dead
    for info in infos:
        relative = info.path[len(prefix):]
        if info.type != pafs.FileType.File or is_hidden(relative) or relative in listed or relative in intended:
            continue
        if info.mtime is not None and info.mtime.timestamp() < cutoff:
            found.append(info.path)
    return found


def _remove_empty_directories(fs: pafs.FileSystem, root: str, directories: set[str]) -> None:
    """Remove partition directories left empty, deepest first; never the root or a commit-log entry."""
    candidates: set[str] = set()
    for directory in directories:
        while directory.startswith(root + "/"):
            candidates.add(directory)
            directory = posixpath.dirname(directory)
    for directory in sorted(candidates, key=lambda d: -d.count("/")):
        top = directory[len(root) + 1:].split("/", 1)[0]
        if top == STAGING_DIR or top.startswith(CLAIM_PREFIX) or is_log_file(top):
            continue
        try:
            if not fs.get_file_info(pafs.FileSelector(directory, allow_not_found=True)):
                fs.delete_dir(directory)
        except OSError:
            pass  # a writer is publishing into it, or it is gone already



def collect_dataset_garbage(path: str, filesystem: pafs.FileSystem | None = None,
                            older_than_s: float | None = None, dry_run: bool = False) -> list[str]:
    """`sluice gc --dataset PATH`: remove what commits to a sluice-written dataset replaced, and the leftovers of
    crashed writes, older than `older_than_s` (default: snapshot_retention_s); return the paths removed."""
    fs, root = filesystem_for(str(path), filesystem)
    root = root.rstrip("/")
    if not read_log(fs, root).committed:
        raise SinkError(f"{str(path)!r} holds no commit log (_sluice_manifest_* files), so sluice cannot tell its "
                        f"data from leftovers; gc removes files only from datasets sluice wrote.")
    retention = config_module.current().snapshot_retention_s if older_than_s is None else older_than_s
    problems: list[str] = []
    removed = collect_garbage(fs, root, retention, lambda fn, what: retrying(fn, what=what),
                              lambda p, exc: problems.append(f"{p}: {type(exc).__name__}: {exc}"), leftovers=True,
                              dry_run=dry_run)
    if problems:
        raise SinkError(f"gc removed {len(removed)} file(s) from {str(path)!r} but could not remove "
                        f"{len(problems)}: " + "; ".join(problems[:5]))
    return removed
