"""`python -m wgsvault` runs the command line."""

from wgsvault.cli import main

main()
