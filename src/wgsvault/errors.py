"""One exception hierarchy for everything a user can see.

    VaultError              base: the CLI prints its message on one line and exits non-zero
    ├── InputError          a file or argument given by the user is bad (names the file/line)
    ├── PolicyError         a layout, policy or config file is invalid
    ├── CatalogError        the catalog cannot be opened, migrated or is inconsistent
    ├── IntegrityError      a check on data content failed (digest, checksum, proof)
    └── AccessDenied        an actor is not allowed to do what it asked

Messages say what is wrong and, where it helps, what to do. Each class carries its CLI exit code.
"""

from __future__ import annotations


class VaultError(Exception):
    """Base of all errors wgsvault reports to a user."""

    exit_code = 1


class InputError(VaultError):
    """A file or argument the user gave is bad."""

    exit_code = 2


class PolicyError(VaultError):
    """A layout, policy or configuration file is invalid."""

    exit_code = 2


class CatalogError(VaultError):
    """The catalog cannot be opened, migrated or queried."""

    exit_code = 3


class IntegrityError(VaultError):
    """A content check failed: data differs from what it must be."""

    exit_code = 4


class AccessDenied(VaultError):
    """The actor is not allowed to do what it asked."""

    exit_code = 5
