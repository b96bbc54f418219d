"""wgsvault: storage and access of a national whole-genome database.

The package follows the data flow of the vault:

    scan (scan.py, layout.py, filetypes.py) -> catalog (catalog/) -> plan (policy.py, plan.py)
    -> apply (convert, verify, delete) -> restore / serve -> report (footprint.py, render.py)

The CLI (cli.py) only parses arguments and prints; every command calls a library function that the
tests call directly.
"""

from wgsvault.errors import (
    AccessDenied,
    CatalogError,
    InputError,
    IntegrityError,
    PolicyError,
    VaultError,
)

__version__ = "0.1.0"

__all__ = [
    "AccessDenied",
    "CatalogError",
    "InputError",
    "IntegrityError",
    "PolicyError",
    "VaultError",
    "__version__",
]
