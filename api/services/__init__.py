"""The use cases both doors call: submission, provisioning, training, audit, status, reports.

Each service takes what it needs by keyword; :mod:`api.composition` builds them.
"""
