"""The moe_lora_discipline method: see ``config.py``, ``builder.py`` and ``inference.py``."""
