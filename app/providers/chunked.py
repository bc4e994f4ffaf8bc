"""A streamed answer's body as it arrives: each socket read's complete chunks in one piece.

``Response.iter_content`` reads a chunked body one HTTP chunk at a time, through three
generators (requests', urllib3's ``stream`` and ``read_chunked``) and three buffered reads per
chunk (its size line, its data, its CRLF). An upstream's SSE stream sends one event per chunk,
so that is paid per event, and every one of them is one write to the client. :func:`iter_stream`
instead takes whatever the connection's buffer holds (``read1``: at most one socket read),
decodes every complete chunk in it with ``bytes.find``, and yields their data together: one
block, hence one write to the client, per read, however many events arrived meanwhile; and
one generator frame on the stack of an idle stream instead of three.

Only for what it can decode faithfully: a chunked body with no content encoding, on a
response of the lean transport. Anything else goes through ``iter_content`` unchanged.
Errors are ``requests``' exceptions, as ``iter_content`` raises them; the connection goes back
to its pool after the last chunk, as urllib3 would put it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import requests

# Bytes asked of each read: ``read1`` allocates this much before it waits for the socket,
# so it is what an idle stream holds meanwhile (64 KiB was 53 MB for 1,000 idle streams).
READ_SIZE = 2048
MAX_SIZE_LINE = 1024  # a chunk-size line (with extensions) longer than this is refused


def _fast_path(resp: requests.Response) -> Any:
    """The http.client response to read from directly, or None."""
    raw = resp.raw
    original = getattr(raw, "_original_response", None)
    if (original is None or not getattr(raw, "chunked", False)
            or getattr(original, "fp", None) is None
            or resp.headers.get("Content-Encoding", "identity").lower() != "identity"):
        return None
    return original


def iter_stream(resp: requests.Response) -> Iterator[bytes]:
    """The body as it arrives (see the module docstring)."""
    original = _fast_path(resp)
    if original is None:
        yield from resp.iter_content(chunk_size=None)
        return
    try:
        yield from _chunks(original.fp)
    except requests.RequestException:  # (an OSError too)
        raise
    except TimeoutError as exc:
        raise requests.ConnectionError(exc) from None  # iter_content's mapping of a stall
    except OSError as exc:  # reset mid-body: iter_content calls that a ChunkedEncodingError
        raise requests.exceptions.ChunkedEncodingError(exc) from None
    original.close()  # complete: the connection is reusable
    resp.raw.release_conn()


def _chunks(fp: Any) -> Iterator[bytes]:
    buf = b""
    while True:
        data = fp.read1(READ_SIZE)
        if not data:
            raise requests.exceptions.ChunkedEncodingError("Response ended prematurely")
        buf = buf + data if buf else data
        pieces: list[bytes] = []
        pos = 0
        while True:
            line_end = buf.find(b"\r\n", pos)
            if line_end < 0:
                if len(buf) - pos > MAX_SIZE_LINE:
                    raise requests.exceptions.ChunkedEncodingError("chunk size line too long")
                break
            try:
                size = int(buf[pos:line_end].split(b";", 1)[0], 16)
            except ValueError:
                raise requests.exceptions.ChunkedEncodingError(
                    f"invalid chunk size {buf[pos:line_end][:40]!r}") from None
            if size == 0:  # the last chunk: then optional trailer lines and an empty line
                if buf.find(b"\r\n\r\n", line_end) >= 0:
                    if pieces:
                        yield b"".join(pieces)
                    return
                break  # wait for the rest of the trailer
            end = line_end + 2 + size
            if len(buf) < end + 2:
                break  # this chunk is not complete yet
            pieces.append(buf[line_end + 2:end])
            pos = end + 2
        buf = buf[pos:]
        if pieces:
            yield pieces[0] if len(pieces) == 1 else b"".join(pieces)
