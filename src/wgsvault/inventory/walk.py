"""Walking storage trees: one `scandir` per directory, one `stat` per file, no content read.

`scan_dir` lists one directory and turns its entries into catalog records, using the whole listing
at once so that FASTQ mates are paired and index files attached to their data file without any
further lookup. A directory holding an Illumina run-folder marker (`RunInfo.xml`, ...) becomes one
`bcl` record summing every file below it. Symbolic links are never followed (they would count the
same bytes twice); broken links, unreadable directories and files, special files, files no layout
rule places and unknown file types are returned as issues, never raised.

`walk_dirs` walks a list of directories to the bottom; it is the unit of work that `scan.py` hands
to a process pool, so it takes and returns only picklable values.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import NamedTuple

from wgsvault.inventory.filetypes import FileType, fastq_read, index_targets
from wgsvault.inventory.layout import Layout


class Record(NamedTuple):
    path: str
    unit: str
    type: str
    read_no: int | None
    controller: str | None
    genome: str | None
    size: int
    mtime_ns: int
    inode: int
    n_files: int


class Issue(NamedTuple):
    path: str
    kind: str
    detail: str


class DirResult(NamedTuple):
    records: list[Record]
    issues: list[Issue]
    subdirs: list[str]  # relative paths still to walk
    unreadable: list[str]  # absolute paths of directories that could not be listed


#: directories the vault itself keeps inside a storage root (quarantine); never scanned
VAULT_DIR_PREFIX = ".wgsvault-"


def _join(rel: str, name: str) -> str:
    return f"{rel}/{name}" if rel else name


def scan_dir(root: str, rel: str, layout: Layout) -> DirResult:
    """Records for the files directly in `root/rel`, and its subdirectories to walk."""
    records: list[Record] = []
    issues: list[Issue] = []
    subdirs: list[str] = []
    absdir = os.path.join(root, rel) if rel else root
    try:
        with os.scandir(absdir) as it:
            entries = list(it)
    except OSError as exc:
        issues.append(Issue(absdir, "unreadable", exc.strerror or str(exc)))
        return DirResult(records, issues, subdirs, [absdir])
    if rel and any(e.name in layout.run_folder_markers for e in entries):
        return _run_folder(root, rel, absdir, layout)

    files: list[tuple[str, os.stat_result, FileType]] = []
    for entry in entries:
        try:
            if entry.is_symlink():
                issues.append(_link_issue(entry.path))
            elif entry.is_dir(follow_symlinks=False):
                if not entry.name.startswith(VAULT_DIR_PREFIX):  # quarantine is not the estate
                    subdirs.append(_join(rel, entry.name))
            elif entry.is_file(follow_symlinks=False):
                files.append(
                    (entry.name, entry.stat(follow_symlinks=False), layout.file_type(entry.name))
                )
            else:
                issues.append(
                    Issue(entry.path, "special", "not a regular file (fifo, socket, device)")
                )
        except OSError as exc:
            issues.append(Issue(entry.path, "unreadable", exc.strerror or str(exc)))

    units = _units(absdir, files, issues)
    for (name, st, ftype), (unit, read_no) in zip(files, units, strict=True):
        path = os.path.join(absdir, name)
        if not os.access(path, os.R_OK):
            issues.append(Issue(path, "unreadable", "no read permission"))
        if ftype is FileType.UNKNOWN:
            issues.append(Issue(path, "unknown_type", "no classification rule matches this name"))
        controller, genome = layout.locate(_join(rel, name))
        if controller is None:
            issues.append(Issue(path, "unmapped", "no layout rule gives its data controller"))
        records.append(
            Record(
                path,
                unit,
                ftype.value,
                read_no,
                controller,
                genome,
                st.st_size,
                st.st_mtime_ns,
                st.st_ino,
                1,
            )
        )
    return DirResult(records, issues, subdirs, [])


def _units(
    absdir: str, files: list[tuple[str, os.stat_result, FileType]], issues: list[Issue]
) -> list[tuple[str, int | None]]:
    """(unit path, read number) of each file: FASTQ mates share a unit, indexes join their data."""
    names = {name for name, _, _ in files}
    fastq: dict[str, dict[int, str]] = {}
    reads: dict[str, tuple[int | None, str]] = {}
    for name, _, ftype in files:
        if ftype is FileType.FASTQ:
            read_no, key = fastq_read(name)
            reads[name] = (read_no, key)
            if read_no is not None:
                fastq.setdefault(key, {})[read_no] = name
    out: list[tuple[str, int | None]] = []
    for name, _, ftype in files:
        path = os.path.join(absdir, name)
        if ftype is FileType.FASTQ:
            read_no, key = reads[name]
            if read_no is None:
                out.append((path, None))
            elif len(fastq[key]) == 2:
                out.append((os.path.join(absdir, key), read_no))
            else:
                mate = 3 - read_no
                issues.append(Issue(path, "fastq_without_mate", f"R{read_no} has no R{mate} here"))
                out.append((path, read_no))
        elif ftype is FileType.INDEX:
            target = next((t for t in index_targets(name) if t in names), None)
            if target is None:
                issues.append(Issue(path, "orphan_index", "the file it indexes is not here"))
                out.append((path, None))
            else:
                out.append((os.path.join(absdir, target), None))
        else:
            out.append((path, None))
    return out


def _link_issue(path: str) -> Issue:
    try:
        target = os.readlink(path)
    except OSError:
        target = "?"
    if os.path.exists(path):
        return Issue(path, "symlink", f"-> {target} (not followed)")
    return Issue(path, "broken_link", f"-> {target} (target missing)")


@dataclass
class FolderTotals:
    size: int
    mtime_ns: int  # newest of the folder and everything in it
    n_files: int
    issues: list[Issue]
    unreadable: list[str]


def folder_totals(absdir: str) -> FolderTotals:
    """Size and newest mtime of everything below a folder (a run folder is one unit)."""
    issues: list[Issue] = []
    unreadable: list[str] = []
    size = n_files = 0
    mtime = os.stat(absdir).st_mtime_ns
    stack = [absdir]
    while stack:
        d = stack.pop()
        try:
            with os.scandir(d) as it:
                for e in it:
                    if e.is_symlink():
                        issues.append(_link_issue(e.path))
                    elif e.is_dir(follow_symlinks=False):
                        stack.append(e.path)
                    else:
                        st = e.stat(follow_symlinks=False)
                        size += st.st_size
                        n_files += 1
                        mtime = max(mtime, st.st_mtime_ns)
        except OSError as exc:
            issues.append(Issue(d, "unreadable", exc.strerror or str(exc)))
            unreadable.append(d)
    return FolderTotals(size, mtime, n_files, issues, unreadable)


def _run_folder(root: str, rel: str, absdir: str, layout: Layout) -> DirResult:
    """One `bcl` record for a whole Illumina run folder."""
    st_dir = os.stat(absdir)
    t = folder_totals(absdir)
    issues, unreadable = t.issues, t.unreadable
    size, mtime, n_files = t.size, t.mtime_ns, t.n_files
    controller, genome = layout.locate(rel)
    if controller is None:
        issues.append(Issue(absdir, "unmapped", "no layout rule gives its data controller"))
    rec = Record(
        absdir,
        absdir,
        FileType.BCL.value,
        None,
        controller,
        genome,
        size,
        mtime,
        st_dir.st_ino,
        n_files,
    )
    return DirResult([rec], issues, [], unreadable)


def walk_dirs(root: str, rels: list[str], layout: Layout) -> DirResult:
    """Walk each directory in `rels` (relative to `root`) to the bottom."""
    records: list[Record] = []
    issues: list[Issue] = []
    unreadable: list[str] = []
    stack = list(rels)
    while stack:
        res = scan_dir(root, stack.pop(), layout)
        records.extend(res.records)
        issues.extend(res.issues)
        unreadable.extend(res.unreadable)
        stack.extend(res.subdirs)
    return DirResult(records, issues, [], unreadable)
