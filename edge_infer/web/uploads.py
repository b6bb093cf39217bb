"""Uploads streamed to disk: the body is never held in memory, its size is counted as it arrives (413 past the
limit, before the rest is read), and the file name is reduced to a safe base name. The server never opens an
uploaded file: it only hands its path to a verb, whose loaders check it (weights-only, size limits; see
docs/SECURITY.md)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any, AsyncIterator

from edge_infer.errors import EdgeInferError
from edge_infer.web.operations import kind_of
from edge_infer.web.security import UnsafeNameError, safe_name


class UploadError(EdgeInferError, ValueError):
    """A malformed upload request (400)."""


class TooLarge(EdgeInferError):
    """An upload over the limit (413)."""


async def receive_upload(chunks: AsyncIterator[bytes], content_type: str | None, content_length: str | None,
                         folder: Path, max_bytes: int) -> dict[str, Any]:
    """Stream the multipart field ``file`` of a request body into ``folder``; its name, size, sha256 and kind."""
    from python_multipart.multipart import MultipartParser, parse_options_header

    if content_length is not None:
        try:
            declared = int(content_length)
        except ValueError:
            raise UploadError("Content-Length is not a number") from None
        if declared > max_bytes + 64 * 1024:  # multipart framing around the file
            raise TooLarge(f"upload of {declared} bytes is over the limit of {max_bytes} bytes (--max-upload-mb)")
    ctype, options = parse_options_header(content_type or "")
    if ctype != b"multipart/form-data" or b"boundary" not in options:
        raise UploadError("send multipart/form-data with one field 'file'")
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".upload.", dir=folder)
    tmp = Path(tmp_name)
    state: dict[str, Any] = {"headers": {}, "field": b"", "value": b"", "name": None, "in_file": False,
                             "done": False, "size": 0, "sha": hashlib.sha256(), "error": None}
    out = os.fdopen(fd, "wb")

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state["field"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        state["value"] += data[start:end]

    def on_header_end() -> None:
        state["headers"][state["field"].lower()] = state["value"]
        state["field"], state["value"] = b"", b""

    def on_headers_finished() -> None:
        _, disp = parse_options_header(state["headers"].get(b"content-disposition", b""))
        is_file = disp.get(b"name") == b"file" and not state["done"]
        state["in_file"] = is_file
        if is_file:
            if b"filename" not in disp:
                state["error"] = "the field 'file' has no filename"
            # refused before a byte of it is written
            state["name"] = safe_name(disp.get(b"filename", b"").decode("utf-8", errors="replace"), "upload file name")

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if not state["in_file"]:
            return
        block = data[start:end]
        state["size"] += len(block)
        if state["size"] > max_bytes:
            raise TooLarge(f"upload over the limit of {max_bytes} bytes (--max-upload-mb)")
        state["sha"].update(block)
        out.write(block)

    def on_part_end() -> None:
        if state["in_file"]:
            state["done"] = True
        state["in_file"] = False
        state["headers"] = {}

    parser = MultipartParser(options[b"boundary"], {
        "on_header_field": on_header_field, "on_header_value": on_header_value, "on_header_end": on_header_end,
        "on_headers_finished": on_headers_finished, "on_part_data": on_part_data, "on_part_end": on_part_end})
    try:
        try:
            async for chunk in chunks:
                if chunk:
                    parser.write(chunk)
            parser.finalize()
        except (TooLarge, UploadError, UnsafeNameError):
            raise
        except Exception as e:  # python-multipart's parse errors
            raise UploadError(f"malformed multipart body: {' '.join(str(e).split())[:200]}") from None
        finally:
            out.close()
        if state["error"]:
            raise UploadError(state["error"])
        if not state["done"]:
            raise UploadError("no field 'file' in the upload")
        name = state["name"]
        os.chmod(tmp, 0o644)
        os.replace(tmp, folder / name)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return {"name": name, "size": state["size"], "sha256": state["sha"].hexdigest(), "kind": kind_of(name),
            "ref": f"upload:{name}"}
