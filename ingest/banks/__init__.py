"""Question banks as teachers keep them: CSV, TSV, XLSX and Parquet tables, one question a row.

:func:`convert_bank` is the conversion both ``byr convert`` and intake run; see
:mod:`ingest.banks.convert` for what it does and :mod:`ingest.mapping` for column mappings.
"""

from __future__ import annotations

from ingest.banks.convert import (
    BankUnreadable,
    ConversionOptions,
    ConvertedBank,
    RowOrigin,
    convert_bank,
)
from ingest.banks.export import ExportFormat, export
from ingest.mapping import ColumnMapping, InvalidMapping

__all__ = [
    "BankUnreadable",
    "ColumnMapping",
    "ConversionOptions",
    "ConvertedBank",
    "ExportFormat",
    "InvalidMapping",
    "RowOrigin",
    "convert_bank",
    "export",
]
