"""``python -m service`` is the ``chatgate`` command."""

from .cli import main

main()
