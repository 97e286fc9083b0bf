"""The lora method: see ``config.py`` and ``builder.py``."""
