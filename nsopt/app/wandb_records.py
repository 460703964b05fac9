"""Read an offline wandb run back from its ``run-<id>.wandb`` file.

The file is wandb's record log: a 7-byte header (``:W&B``, magic ``0xBEE1``,
version) followed by LevelDB-log framed chunks (32 KiB blocks; each chunk has a
CRC32C (4 bytes), a little-endian length (2), a type (1: full, 2: first,
3: middle, 4: last)), each complete payload a ``wandb_internal_pb2.Record``
protobuf.  Only wandb's public protobuf schema is used here, so the
round-trip test checks what wandb really wrote, independent of wandb's
private reader.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any, Iterator

__all__ = ["iter_records", "read_run", "find_run_file"]

_BLOCK = 32768
_HEADER = 7
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def _payloads(data: bytes) -> Iterator[bytes]:
    if data[:4] != b":W&B":
        raise ValueError("not a wandb run file (missing ':W&B' header)")
    pos, pending = _HEADER, b""
    while pos + 7 <= len(data):
        left_in_block = _BLOCK - pos % _BLOCK
        if left_in_block < 7:  # trailer padding
            pos += left_in_block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if kind == 0 and length == 0:  # zero padding at the end of a block
            pos += left_in_block
            continue
        chunk = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind == _FULL:
            yield chunk
        elif kind == _FIRST:
            pending = chunk
        elif kind == _MIDDLE:
            pending += chunk
        elif kind == _LAST:
            yield pending + chunk
            pending = b""
        else:
            raise ValueError(f"corrupt wandb run file: chunk type {kind} at byte {pos}")


def iter_records(path: str | Path) -> Iterator[Any]:
    """Yield the ``Record`` protobufs stored in a ``.wandb`` file."""
    from wandb.proto import wandb_internal_pb2

    for payload in _payloads(Path(path).read_bytes()):
        rec = wandb_internal_pb2.Record()
        rec.ParseFromString(payload)
        yield rec


def _key(item: Any) -> str:
    return item.key if item.key else "/".join(item.nested_key)


def read_run(path: str | Path, wait_s: float = 0.0) -> dict[str, Any]:
    """``{"config", "history", "summary", "files", "run", "artifacts", "metrics", "complete"}`` of a
    run file (``metrics``: each defined metric and its step metric).

    ``complete`` says whether wandb wrote the final ``exit`` record; with
    ``wait_s > 0`` the file is re-read until it is complete or the time is up
    (wandb's service may still be flushing right after ``run.finish()``).
    """
    import time

    deadline = time.monotonic() + wait_s
    while True:
        out = _read_once(path)
        if out["complete"] or time.monotonic() >= deadline:
            return out
        time.sleep(0.2)


def _read_once(path: str | Path) -> dict[str, Any]:
    out: dict[str, Any] = {"config": {}, "history": [], "summary": {}, "files": [], "run": {},
                           "artifacts": [], "metrics": {}, "complete": False}
    for rec in iter_records(path):
        kind = rec.WhichOneof("record_type")
        if kind == "history":
            out["history"].append({_key(i): json.loads(i.value_json) for i in rec.history.item})
        elif kind == "config":
            for i in rec.config.update:
                out["config"][_key(i)] = json.loads(i.value_json)
        elif kind == "summary":
            for i in rec.summary.update:
                out["summary"][_key(i)] = json.loads(i.value_json)
        elif kind == "files":
            out["files"].extend(f.path for f in rec.files.files)
        elif kind == "run":
            for i in rec.run.config.update:
                out["config"][_key(i)] = json.loads(i.value_json)
            out["run"] = {"id": rec.run.run_id, "project": rec.run.project, "group": rec.run.run_group,
                          "name": rec.run.display_name, "tags": list(rec.run.tags)}
        elif kind == "artifact":
            a = rec.artifact
            out["artifacts"].append({"name": a.name, "type": a.type,
                                     "files": [c.path for c in a.manifest.contents]})
        elif kind == "metric":
            out["metrics"][rec.metric.name or rec.metric.glob_name] = rec.metric.step_metric
        elif kind == "exit":
            out["complete"] = True
    return out


def find_run_file(folder: str | Path) -> Path:
    """The single ``run-*.wandb`` file under ``folder`` (raises if none or several)."""
    files = sorted(Path(folder).rglob("run-*.wandb"))
    if len(files) != 1:
        raise FileNotFoundError(f"expected one run-*.wandb file under {folder}, found {files}")
    return files[0]
