from pathlib import Path

import pytest

from wgsvault.errors import PolicyError
from wgsvault.inventory.filetypes import FileType
from wgsvault.inventory.layout import DEFAULT_LAYOUT, load_layout


def test_default_layout_locates_controller_and_genome() -> None:
    lay = DEFAULT_LAYOUT
    assert lay.locate("region-east/NGC1/NGC1.bam") == ("region-east", "NGC1")
    assert lay.locate("region-east/NGC1/run/Data/x.bcl") == ("region-east", "NGC1")
    assert lay.locate("national/NGC1/NGC1.cram") == ("national", "NGC1")
    # a file directly in a controller folder has no genome; one at the top has no controller
    assert lay.locate("region-east/README.txt") == ("region-east", None)
    assert lay.locate("stray.bam") == (None, None)
    assert lay.controller_kind("national") == "national"
    assert lay.controller_kind("region-east") == "region"


def test_custom_layout_glob_regex_and_type_rules(tmp_path: Path) -> None:
    f = tmp_path / "layout.toml"
    f.write_text(
        """
name = "site"
national = ["ngc"]
[[paths]]
glob = "archive/{genome}/**"
controller = "ngc"
[[paths]]
regex = '^(?P<controller>region-[a-z]+)/projects/[^/]+/(?P<genome>G\\d+)_'
[[types]]
glob = "*.ora"
type = "fastq"
"""
    )
    lay = load_layout(f)
    assert lay.locate("archive/G7/a/b/G7.cram") == ("ngc", "G7")
    assert lay.locate("region-north/projects/p1/G12_R1.fastq.gz") == ("region-north", "G12")
    assert lay.locate("elsewhere/G1.cram") == (None, None)
    assert lay.file_type("x_R1.fastq.ora") is FileType.FASTQ
    assert lay.file_type("x.bam") is FileType.BAM
    assert lay.controller_kind("ngc") == "national"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("paths = []", "paths"),
        ('[[paths]]\nglob = "{genome}/**"', "controller"),
        ('[[paths]]\nglob = "{controller}/x"\nregex = "x"', "exactly one"),
        ('[[paths]]\nregex = "(?P<controller>["', "invalid regex"),
        ('[[paths]]\nglob = "{controller}/*"\nbogus = 1', "bogus"),
        (
            '[[paths]]\nglob = "{controller}/*"\n[[types]]\nglob = "*.x"\ntype = "foo"',
            "types.0.type",
        ),
        ("paths = [", "invalid TOML"),
    ],
)
def test_bad_layout_is_one_clear_line(tmp_path: Path, body: str, message: str) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(body)
    with pytest.raises(PolicyError) as exc:
        load_layout(f)
    text = str(exc.value)
    assert str(f) in text and message in text and "\n" not in text
