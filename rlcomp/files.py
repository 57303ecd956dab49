"""Files: written atomically and byte-reproducibly; safetensors read without ever unpickling.

:func:`safetensors_bytes` writes and :func:`read_safetensors` reads the container of both our file
formats (checkpoints, :mod:`rlcomp.checkpoint`; compressed files, :mod:`rlcomp.compress.storage`).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load as _load_safetensors


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename.

    The file gets the usual permissions (``0o666`` less the umask); on any failure the temporary
    file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


_SAFETENSORS_DTYPES = {
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
    torch.uint8: "U8", torch.bool: "BOOL",
}


def safetensors_bytes(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> bytes:
    """A safetensors file whose bytes depend only on the tensors and the metadata.

    The library's own writer orders the metadata keys differently from one process to the next,
    so the same model gave files with different digests. Here the header is JSON with sorted keys
    and no spaces, tensors are laid out by decreasing element size then name (every tensor stays
    aligned to its element size), and the header is padded with spaces to a multiple of 8 bytes,
    as the format allows.

    Raises:
        TypeError: for a tensor dtype safetensors cannot hold, or metadata that is not text.
    """
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise TypeError("safetensors metadata must map text to text")
    order = sorted(tensors, key=lambda name: (-tensors[name].element_size(), name))
    header: dict[str, object] = {"__metadata__": dict(sorted(metadata.items()))}
    payload: list[bytes] = []
    offset = 0
    for name in order:
        tensor = tensors[name].detach().cpu().contiguous()
        if tensor.dtype not in _SAFETENSORS_DTYPES:
            raise TypeError(f"cannot store a {tensor.dtype} tensor in safetensors ({name!r})")
        data = tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b""
        header[name] = {"dtype": _SAFETENSORS_DTYPES[tensor.dtype], "shape": list(tensor.shape),
                        "data_offsets": [offset, offset + len(data)]}
        payload.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=True).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + b"".join(payload)


class SafetensorsError(ValueError):
    """Bytes that are not a readable safetensors file (a one-line reason)."""


def safetensors_metadata(blob: bytes) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors file's bytes; parses the JSON header only.

    Raises:
        SafetensorsError: for bytes too short, or a header that is not a safetensors JSON object.
    """
    if len(blob) < 8:
        raise SafetensorsError("too short to be a safetensors file")
    n = int.from_bytes(blob[:8], "little")
    if n <= 0 or 8 + n > len(blob):
        raise SafetensorsError("not a safetensors file (bad or truncated header)")
    try:
        header = json.loads(blob[8 : 8 + n])
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SafetensorsError("not a safetensors file (header is not JSON)") from exc
    if not isinstance(header, dict):
        raise SafetensorsError("not a safetensors file (header is not a JSON object)")
    return header.get("__metadata__") or {}


def read_safetensors(blob: bytes) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """The metadata and the tensors of a safetensors file's bytes (the reader of every format).

    Only JSON and raw arrays are parsed: nothing is ever unpickled.

    Raises:
        SafetensorsError: (one line) for a header that is not safetensors, or damaged tensors.
    """
    metadata = safetensors_metadata(blob)
    try:
        tensors = _load_safetensors(blob)
    except Exception as exc:  # safetensors raises its own error types for damaged files
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise SafetensorsError(f"damaged safetensors file ({reason})") from exc
    return metadata, tensors


def check_writable(path: str | os.PathLike) -> Path:
    """Refuse, before any work, a file path this process could not write; returns it resolved.

    Creates the file's missing folders, then proves by creating and removing a temporary file
    beside it that the folder takes new files, and that an existing file can be replaced. Deciding
    by trying is the only test that holds for root, read-only mounts and immutable files alike.

    Raises:
        ValueError: naming the path, for a folder, a path under a regular file, or a place this
            process cannot write.
    """
    target = Path(path).expanduser()
    if target.is_dir():
        raise ValueError(f"{target} is a directory, not a file")
    blocker = _file_above(target)
    if blocker is not None:
        raise ValueError(f"cannot write {target}: {blocker} is a file, not a folder")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".probe",
                                     dir=target.parent)
        os.close(fd)
        os.unlink(probe)
        if target.exists():
            with open(target, "r+b"):
                pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ValueError(f"cannot write {target} ({reason})") from None
    return target.resolve()


def _file_above(path: Path) -> Path | None:
    """The first existing ancestor of ``path`` if it is not a folder (a path under a file)."""
    for parent in path.absolute().parents:
        if parent.exists():
            return None if parent.is_dir() else parent
    return None
