"""The adalora method: see ``config.py`` and ``builder.py``."""
