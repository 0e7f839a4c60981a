"""``python -m ragsc.cli``: the ``ragsc`` console entry."""

from ragsc.cli import main

main()
