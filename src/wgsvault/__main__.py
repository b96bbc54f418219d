"""`python -m wgsvault` runs the command line."""

from wgsvault.cli.main import main

main()
