"""The partial method: see ``config.py`` and ``builder.py``."""
