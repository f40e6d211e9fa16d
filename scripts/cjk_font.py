"""Make the market page's Chinese font: a subset of Noto Sans CJK SC as woff2.

The page must show Chinese names on a machine without any CJK font, so it ships its own:
Noto Sans CJK SC Regular (SIL Open Font License 1.1), cut down with fontTools to

- every character of the product and category names in the shipped catalogue,
- the 3,755 common characters of GB 2312 level 1 (names an operator adds are very likely
  among them),
- CJK and full-width punctuation.

The source font is Debian's fonts-noto-cjk, downloaded (not installed: an installed CJK font
would hide a broken fallback) unless --source names that package already unpacked. Needs the
`dev` extra (fontTools with brotli). Run from the repository root:

    .venv/bin/python scripts/cjk_font.py
"""

from __future__ import annotations

import argparse
import contextlib
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

from fontTools import subset
from fontTools.ttLib import TTCollection

ROOT = Path(__file__).resolve().parents[1]
CATALOGUE = ROOT / "src/tickwire/catalogue.toml"
FONTS = ROOT / "src/tickwire/gateway/static/market/fonts"
OUT = FONTS / "noto-sans-sc-subset.woff2"
LICENCE = FONTS / "OFL.txt"

DEBIAN_PACKAGE = "fonts-noto-cjk"
TTC_IN_PACKAGE = "usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"
COPYRIGHT_IN_PACKAGE = "usr/share/doc/fonts-noto-cjk/copyright"
SC_FAMILY = "Noto Sans CJK SC"

PUNCTUATION = [*range(0x3000, 0x3040), *range(0xFF01, 0xFF5F), 0x2014, 0x2026, 0x00B7]
"""CJK symbols and punctuation, full-width ASCII forms, the dash, ellipsis and middle dot."""


def gb2312_level1() -> set[str]:
    """GB 2312's first level: rows 16 to 55, the 3,755 most used characters."""
    chars: set[str] = set()
    for row in range(0xB0, 0xD8):
        for cell in range(0xA1, 0xFF):
            with contextlib.suppress(UnicodeDecodeError):  # row 55 ends early
                chars.add(bytes([row, cell]).decode("gb2312"))
    return chars


def catalogue_chars() -> set[str]:
    data = tomllib.loads(CATALOGUE.read_text(encoding="utf-8"))
    names = [c["name"] for c in data["categories"]] + [p["name"] for p in data["products"]]
    return {ch for name in names for ch in name if ord(ch) > 0x2000}


def wanted() -> str:
    chars = gb2312_level1() | catalogue_chars() | {chr(c) for c in PUNCTUATION}
    return "".join(sorted(chars))


def fetch_source(workdir: Path) -> Path:
    """Debian's package, unpacked into `workdir`; the folder it was unpacked into."""
    subprocess.run(["apt-get", "download", DEBIAN_PACKAGE], cwd=workdir, check=True)
    deb = next(workdir.glob(f"{DEBIAN_PACKAGE}_*.deb"))
    subprocess.run(["dpkg-deb", "-x", str(deb), str(workdir / "x")], check=True)
    return workdir / "x"


def sc_index(ttc: Path) -> int:
    for i, font in enumerate(TTCollection(str(ttc))):
        if font["name"].getDebugName(1) == SC_FAMILY:
            return i
    raise SystemExit(f"{ttc}: no {SC_FAMILY!r} in this collection")


def ofl_text(copyright_file: Path, ttc: Path, index: int) -> str:
    """The font's own copyright notice and the OFL, as the licence asks of every copy."""
    notice = TTCollection(str(ttc))[index]["name"].getDebugName(0) or ""
    text = copyright_file.read_text(encoding="utf-8")
    found = re.search(r"^License: SIL-1\.1\n((?: .*\n)+)", text, re.M)
    if not found:
        raise SystemExit(f"{copyright_file}: no SIL-1.1 licence text in it")
    body = "\n".join("" if line == " ." else line[1:] for line in found[1].splitlines())
    return f"{SC_FAMILY}, subset\n{notice}\n\n{body}\n"


def make(package: Path) -> None:
    ttc, copyright_file = package / TTC_IN_PACKAGE, package / COPYRIGHT_IN_PACKAGE
    index = sc_index(ttc)
    FONTS.mkdir(parents=True, exist_ok=True)
    text = wanted()
    subset.main([
        f"{ttc}", f"--font-number={index}", f"--text={text}", f"--output-file={OUT}",
        "--flavor=woff2", "--no-hinting", "--desubroutinize",
    ])
    LICENCE.write_text(ofl_text(copyright_file, ttc, index), encoding="utf-8")
    print(f"{OUT.relative_to(ROOT)}: {len(text)} characters, {OUT.stat().st_size:,} bytes")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, metavar="DIR",
                        help=f"{DEBIAN_PACKAGE} unpacked with dpkg-deb -x (default: "
                        "download the package)")
    args = parser.parse_args()
    if args.source is not None:
        make(args.source)
        return
    with tempfile.TemporaryDirectory() as tmp:
        make(fetch_source(Path(tmp)))


if __name__ == "__main__":
    sys.exit(main())
