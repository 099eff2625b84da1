"""``python -m service`` is the ``chatgate`` command."""

from .app.cli import main

main()
