"""`python -m maskforge` runs the CLI."""

from maskforge.cli import main

main()
