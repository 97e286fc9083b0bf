"""``python -m api.cli``: the same as the ``byr`` command."""

from api.cli import main

main()
