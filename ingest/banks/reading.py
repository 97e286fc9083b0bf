"""Reading the bytes of a CSV, TSV, XLSX or Parquet file into sheets of cells, with pandas.

pandas reads every format (openpyxl for XLSX, pyarrow for Parquet); nothing here parses a format
by hand. What this module adds is the boundary: a file that is not what its name says, a workbook
that would expand far beyond the batch size limit (a "zip bomb"), a Parquet file whose pages
decompress to more than that, or any exception the libraries raise on a broken file becomes one
:class:`BankUnreadable` naming the file and the rule, never a crash and never the file's content.

Row numbers are those a spreadsheet shows: the header is row 1, the first data row row 2. CSV and
TSV are read as UTF-8 (a byte-order mark is skipped) or, when that fails, as GB18030, the encoding
Excel uses for "CSV" on Chinese Windows.
"""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ingest.errors import IntakeError
from ingest.formats import BatchFormat

if TYPE_CHECKING:
    import pandas as pd

XLSX_MAX_EXPANSION = 4
"""An XLSX workbook may hold at most this many times the batch size limit once unzipped."""
PARQUET_MAX_EXPANSION = 4
"""A Parquet file's pages may decompress to at most this many times the batch size limit."""

_ZIP_MAGIC = b"PK\x03\x04"
_PARQUET_MAGIC = b"PAR1"
_PANDAS_LINE = re.compile(r"(?:line|row) (\d+)")


class BankUnreadable(IntakeError):
    """A question-bank file that cannot be read as the format its name says."""


@dataclass(frozen=True, slots=True)
class Sheet:
    """The header and data rows of one sheet (a CSV, TSV or Parquet file has one, unnamed).

    ``rows`` holds ``(row number, cells)`` with the cells in header order; cells are strings for
    CSV, TSV and XLSX, and whatever Parquet stored (numbers, lists, ``None``) for Parquet."""

    name: str | None
    headers: tuple[str, ...]
    rows: tuple[tuple[int, tuple[Any, ...]], ...]


def read_sheets(
    data: bytes,
    *,
    source: str,
    fmt: BatchFormat,
    max_bytes: int,
    max_rows: int,
    sheet: str | None = None,
) -> list[Sheet]:
    """The sheets of a tabular file (XLSX: every sheet, or only ``sheet``), at most ``max_rows``
    + 1 data rows each (enough for the caller to see that there were too many). Raises
    :class:`BankUnreadable` when the file cannot be read as ``fmt``."""
    if sheet is not None and fmt is not BatchFormat.XLSX:
        raise BankUnreadable(f"{source}: only an XLSX workbook has sheets to choose from")
    if fmt is BatchFormat.XLSX:
        return _read_xlsx(data, source=source, max_bytes=max_bytes, max_rows=max_rows, sheet=sheet)
    if fmt is BatchFormat.PARQUET:
        return [_read_parquet(data, source=source, max_bytes=max_bytes, max_rows=max_rows)]
    return [_read_delimited(data, source=source, fmt=fmt, max_rows=max_rows)]


def _sheet(name: str | None, frame: pd.DataFrame, *, first_row: int = 2) -> Sheet:
    headers = tuple(_header(c, i) for i, c in enumerate(frame.columns))
    rows = tuple(
        (first_row + i, tuple(cells)) for i, cells in enumerate(frame.itertuples(index=False))
    )
    return Sheet(name=name, headers=headers, rows=rows)


def _header(value: Any, position: int) -> str:
    text = "" if value is None else str(value).strip()
    # pandas names a header cell that is empty "Unnamed: 3"; such a column maps to nothing.
    return "" if text.startswith("Unnamed: ") else text


def _looks_binary(data: bytes) -> bool:
    head = data[:4096]
    return head.startswith((_ZIP_MAGIC, _PARQUET_MAGIC)) or b"\x00" in head


def _read_delimited(data: bytes, *, source: str, fmt: BatchFormat, max_rows: int) -> Sheet:
    import pandas as pd

    kind = fmt.value.upper()
    if _looks_binary(data):
        raise BankUnreadable(
            f"{source}: not a {kind} file: it holds binary data (an XLSX workbook or a Parquet "
            "file must be named .xlsx or .parquet)"
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            text = data.decode("gb18030")
        except UnicodeDecodeError as e:
            raise BankUnreadable(
                f"{source}: not a {kind} file in UTF-8 or GB18030: byte offset {e.start} cannot be "
                "decoded"
            ) from None
    if not text.strip():
        return Sheet(name=None, headers=(), rows=())
    try:
        frame = pd.read_csv(
            io.StringIO(text),
            sep="\t" if fmt is BatchFormat.TSV else ",",
            dtype=str,
            keep_default_na=False,
            na_filter=False,
            skip_blank_lines=False,
            nrows=max_rows + 1,
            engine="c",
        )
    except pd.errors.ParserError as e:
        # pandas counts lines of the file from 1, which is the spreadsheet row when no cell spans
        # lines; its message is ours to rephrase, as it may quote the file.
        found = _PANDAS_LINE.search(str(e))
        where = f"{source}: row {found.group(1)}" if found else source
        raise BankUnreadable(
            f"{where}: not a readable {kind} file: a row has more cells than the header, or a "
            "quoted cell is not closed"
        ) from None
    except Exception as e:  # any other failure of the library on a broken file
        raise BankUnreadable(f"{source}: not a readable {kind} file ({type(e).__name__})") from None
    return _sheet(None, frame)


def _read_xlsx(
    data: bytes, *, source: str, max_bytes: int, max_rows: int, sheet: str | None
) -> list[Sheet]:
    import pandas as pd

    if not data.startswith(_ZIP_MAGIC) or not zipfile.is_zipfile(io.BytesIO(data)):
        raise BankUnreadable(
            f"{source}: not an XLSX workbook (not a zip archive, or a truncated one); a CSV or TSV "
            "file must be named .csv or .tsv"
        )
    limit = XLSX_MAX_EXPANSION * max_bytes
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
            names = {m.filename for m in members}
            expanded = sum(m.file_size for m in members)
    except (zipfile.BadZipFile, OSError, ValueError):
        raise BankUnreadable(f"{source}: not an XLSX workbook (a damaged zip archive)") from None
    if "xl/workbook.xml" not in names:
        raise BankUnreadable(f"{source}: not an XLSX workbook (a zip archive without a workbook)")
    if expanded > limit:
        raise BankUnreadable(
            f"{source}: the workbook expands to more than {limit} bytes when unzipped "
            f"({XLSX_MAX_EXPANSION} times the batch size limit)"
        )
    try:
        with pd.ExcelFile(io.BytesIO(data), engine="openpyxl") as workbook:
            sheet_names = [str(name) for name in workbook.sheet_names]
            if sheet is not None and sheet not in sheet_names:
                listed = ", ".join(f"'{name}'" for name in sheet_names)
                raise BankUnreadable(f"{source}: no sheet of that name; sheets: {listed}")
            wanted = [sheet] if sheet is not None else sheet_names
            return [
                _sheet(
                    name,
                    workbook.parse(
                        name,
                        dtype=str,
                        keep_default_na=False,
                        na_filter=False,
                        nrows=max_rows + 1,
                    ),
                )
                for name in wanted
            ]
    except BankUnreadable:
        raise
    except Exception as e:  # openpyxl and pandas raise many types on a broken workbook
        raise BankUnreadable(
            f"{source}: not a readable XLSX workbook ({type(e).__name__})"
        ) from None


def _read_parquet(data: bytes, *, source: str, max_bytes: int, max_rows: int) -> Sheet:
    import pyarrow.parquet as pq

    if not (data.startswith(_PARQUET_MAGIC) and data.endswith(_PARQUET_MAGIC)):
        raise BankUnreadable(f"{source}: not a Parquet file (no Parquet signature)")
    limit = PARQUET_MAX_EXPANSION * max_bytes
    try:
        parquet = pq.ParquetFile(io.BytesIO(data))
        meta = parquet.metadata
        expanded = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
        if expanded > limit:
            raise BankUnreadable(
                f"{source}: the Parquet data expands to more than {limit} bytes "
                f"({PARQUET_MAX_EXPANSION} times the batch size limit)"
            )
        table = parquet.read().slice(0, max_rows + 1)
        frame = table.to_pandas()
    except BankUnreadable:
        raise
    except Exception as e:  # pyarrow raises ArrowException and builtins on a broken file
        raise BankUnreadable(
            f"{source}: not a readable Parquet file ({type(e).__name__})"
        ) from None
    frame = frame.astype(object).where(frame.notna(), None)
    return _sheet(None, frame)
