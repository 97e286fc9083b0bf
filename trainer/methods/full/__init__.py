"""The full method: see ``config.py`` and ``builder.py``."""
