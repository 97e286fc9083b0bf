"""The moe_lora method: see ``config.py`` and ``builder.py``."""
