"""wgsvault: storage and access of a national whole-genome database.

The package follows the data flow of the vault, one subpackage per stage:

    inventory (scan) -> catalog -> plan -> apply (codec: convert, verify; quarantine, purge)
    -> access / serve (htsget, restore on demand) -> report

with `audit` (the hash-chained log every stage writes to), `demo` (a store it builds itself) and
`cli` (the command line, which only parses and prints) beside them. Utilities every stage may
use sit at the top level: `errors` (one exception hierarchy), `config` (vault home, site
configuration, TOML models), `fsutil` (atomic, durable writes), `bulk` and `faults` (crash points
of the fault tests). Layers point down only; `import-linter` contracts in pyproject.toml say so.
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
