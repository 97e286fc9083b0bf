"""The qlora method: see ``config.py`` and ``builder.py``."""
