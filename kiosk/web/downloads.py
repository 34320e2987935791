"""Downloads: safe file names, CSV bodies (formula-safe cells) and the UTF-8 BOM of ?excel=1.

CSV downloads are UTF-8 without a BOM; ?excel=1 on any CSV link puts a UTF-8 BOM in front, so
that Excel shows names like "Zoë" correctly.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator, Sequence

from flask import Response

from kiosk.csv_safe import csv_text

logger = logging.getLogger(__name__)

UTF8_BOM = b"\xef\xbb\xbf"


def excel_url(csv_url: str) -> str:
    """The same CSV link with ?excel=1 (a UTF-8 BOM in front, for Excel)."""
    return f"{csv_url}{'&' if '?' in csv_url else '?'}excel=1"


def _bom_first(body: Iterable[str] | Iterable[bytes]) -> Iterator[bytes]:
    """The UTF-8 BOM, then body's chunks as UTF-8 bytes (closing body when done or dropped)."""
    try:
        yield UTF8_BOM
        for chunk in body:
            yield chunk.encode("utf-8") if isinstance(chunk, str) else chunk
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()


def add_excel_bom(response: Response) -> None:
    """Prefix a CSV response (whole or streamed) with a UTF-8 BOM (for ?excel=1)."""
    if response.is_streamed:
        response.response = _bom_first(response.response)
    else:
        response.set_data(UTF8_BOM + response.get_data())


def file_download(filename: str, body: str | bytes | Iterable[str], mimetype: str) -> Response:
    """A download of body (text, bytes, or text chunks streamed as produced) with a safe file name."""
    filename = re.sub(r"[^A-Za-z0-9._-]", "_", filename)[:150]
    return Response(body, content_type=mimetype,
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def text_download(filename: str, text: str, mimetype: str) -> Response:
    """A download of text with a safe file name."""
    return file_download(filename, text, f"{mimetype}; charset=utf-8")


def csv_response(filename: str, header: Sequence[str], rows: Iterable[Sequence[object]]) -> Response:
    """A CSV download (UTF-8, header row, formula-safe cells); cells are any printable values."""
    return text_download(filename, csv_text(rows, header), "text/csv")


def csv_stream(filename: str, chunks: Iterable[str]) -> Response:
    """A CSV download sent as its chunks are produced (the report's snapshot lasts as long)."""
    return file_download(filename, chunks, "text/csv; charset=utf-8")
