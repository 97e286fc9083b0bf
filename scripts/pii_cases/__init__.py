"""The generator of the labeled PII evaluation set (``python -m scripts.pii_cases.generate``).

The set it writes, its loader and its scoring stay in :mod:`ingest.governance.pii_eval`.
"""
