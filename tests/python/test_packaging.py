"""The installed distribution: named flash-attn with flashplus's local version label, a
py3-none wheel, and a library that links neither libpython nor torch (so one build serves
every CPython and torch version)."""
import os
import re

import pytest

import flash_attn
import flashplus
from flashplus import _lib

metadata = pytest.importorskip("importlib.metadata")


def _distribution():
    try:
        return metadata.distribution("flash-attn")
    except metadata.PackageNotFoundError:
        pytest.skip("flash-attn is not installed as a distribution (source-tree run)")


def test_distribution_name_and_version():
    dist = _distribution()
    assert dist.metadata["Name"] == "flash-attn"
    assert dist.version == flash_attn.__version__
    assert re.fullmatch(r"2\.8\.3\+flashplus\d+\.\d+\.\d+", dist.version)
    owners = metadata.packages_distributions().get("flash_attn", [])
    assert "flash-attn" in [name.replace("_", "-") for name in owners]


def test_wheel_is_python_and_abi_independent():
    wheel = _distribution().read_text("WHEEL") or ""
    tags = [line.split(":", 1)[1].strip() for line in wheel.splitlines() if line.startswith("Tag:")]
    assert tags and all(tag.startswith("py3-none-") for tag in tags), tags


def test_library_is_inside_the_package():
    if os.environ.get("FLASHPLUS_LIBRARY"):
        pytest.skip("FLASHPLUS_LIBRARY overrides the packaged library")
    path = _lib.library_path()
    assert os.path.dirname(os.path.dirname(path)) == os.path.dirname(flashplus.__file__)
    assert os.path.isfile(path)


def _needed_libraries(path):
    """DT_NEEDED entries of an ELF shared object (64-bit little-endian), without binutils."""
    import struct

    with open(path, "rb") as f:
        data = f.read()
    assert data[:4] == b"\x7fELF" and data[4] == 2 and data[5] == 1
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    dynamic = [s for s in sections if s[1] == 6]  # SHT_DYNAMIC
    assert dynamic, "no dynamic section"
    _, _, _, _, offset, size, link, _, _, entsize = dynamic[0]
    strtab = sections[link][4]
    needed = []
    for pos in range(offset, offset + size, entsize):
        tag, value = struct.unpack_from("<qQ", data, pos)
        if tag == 1:  # DT_NEEDED
            end = data.index(b"\0", strtab + value)
            needed.append(data[strtab + value:end].decode())
    return needed


def test_library_links_neither_python_nor_torch():
    needed = _needed_libraries(_lib.library_path())
    assert needed, "expected at least libc"
    forbidden = ("python", "torch", "c10", "libstdc++", "cudart")
    assert not [n for n in needed if any(f in n for f in forbidden)], needed
