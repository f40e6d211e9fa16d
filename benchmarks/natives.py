"""What the fan-out benchmarks run that is not Python: the C counting client and the Node
and Bun servers. The benchmark's own set-up builds and installs them into
`benchmarks/.cache/` (not committed): `wscount.c` with gcc, `ws` and `bun` from the npm
registry with npm. tickwire itself never needs any of them.

Node is the Debian package (`apt-get install -y nodejs npm`); Bun comes as an npm package
that carries its binary. Each finder returns what it found, or None with the reason, so a
benchmark can skip a row and say why.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache"
NPM_PACKAGES = ("ws@8", "bun@1")


@dataclass
class Found:
    path: Path | None
    reason: str = ""
    version: str = ""


def wscount() -> Found:
    """The C counting client, compiled when missing or older than its source."""
    source, binary = HERE / "wscount.c", CACHE / "wscount"
    if binary.exists() and binary.stat().st_mtime >= source.stat().st_mtime:
        return Found(binary, version="built")
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        return Found(None, "no C compiler (Debian package `gcc`)")
    CACHE.mkdir(parents=True, exist_ok=True)
    out = subprocess.run([gcc, "-O2", "-o", str(binary), str(source)], capture_output=True,
                         text=True, check=False)
    if out.returncode != 0:
        return Found(None, f"gcc failed: {out.stderr.strip()[-500:]}")
    return Found(binary, version="built")


def npm_modules() -> Found:
    """`node_modules` with `ws` and `bun`, installed once from the npm registry."""
    modules = CACHE / "npm" / "node_modules"
    if (modules / "ws").is_dir() and (modules / ".bin" / "bun").exists():
        return Found(modules)
    npm = shutil.which("npm")
    if npm is None:
        return Found(None, "no npm (Debian packages `nodejs npm`)")
    (CACHE / "npm").mkdir(parents=True, exist_ok=True)
    try:
        out = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--silent",
                              "--prefix", str(CACHE / "npm"), *NPM_PACKAGES],
                             capture_output=True, text=True, check=False, timeout=300)
    except subprocess.TimeoutExpired:
        return Found(None, "npm install timed out (is the npm registry reachable?)")
    if out.returncode != 0 or not (modules / "ws").is_dir():
        return Found(None, f"npm install failed: {(out.stderr or out.stdout).strip()[-300:]}")
    return Found(modules)


def node() -> Found:
    path = shutil.which("node") or shutil.which("nodejs")
    if path is None:
        return Found(None, "no node (Debian packages `nodejs npm`)")
    modules = npm_modules()
    if modules.path is None or not (modules.path / "ws").is_dir():
        return Found(None, modules.reason or "`ws` is missing from the npm cache")
    version = _version([path, "--version"])
    ws = (modules.path / "ws" / "package.json").read_text(encoding="utf-8")
    ws_version = ws.split('"version":', 1)[1].split('"')[1] if '"version":' in ws else "?"
    return Found(Path(path), version=f"node {version}, ws {ws_version}")


def bun() -> Found:
    modules = npm_modules()
    if modules.path is None:
        return Found(None, modules.reason)
    path = modules.path / ".bin" / "bun"
    if not path.exists():
        return Found(None, "the npm package `bun` brought no binary")
    version = _version([str(path), "--version"])
    if not version:
        return Found(None, "the bun binary does not run on this machine")
    return Found(path, version=f"bun {version}")


def _version(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""
