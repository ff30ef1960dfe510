"""The code package as deploy/provider.yml installs it: the zip of ``make package``'s code root (build/code), named
by its hash, with a manifest beside it (build/package-<runtime>.json) that says which zip, its SHA-256 and size.

``make package`` calls ``python -m deploy.package zip`` after building build/code. The zip has sorted entries and
fixed times and modes, so the same code root always gives the same hash (two builds may still differ: Python's
bytecode is not always byte-for-byte the same). Only the standard library is used: it runs with whatever Python
``make`` runs.

:func:`ensure` gives the tests and the demo the current package, building it with ``make package`` when the
manifest is missing or older than the function's sources or pins; :func:`variant` derives packages from it (one
dependency left out, one file added) for the tests that prove the local cloud runs the package and nothing else.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build"
FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # zip's earliest date: the hash depends on the contents only
DEFAULT_RUNTIME = "python3.10"


@dataclass(frozen=True)
class Package:
    """A built code package: the zip, its SHA-256, and the FC runtime it was built for."""

    zip_path: Path
    sha256: str
    runtime: str
    size: int

    @property
    def object_name(self) -> str:
        """Its name in the OSS bucket (the zip's own name, which carries the hash)."""
        return self.zip_path.name

    @property
    def short_hash(self) -> str:
        return self.sha256[:12]


def manifest_path(runtime: str = DEFAULT_RUNTIME) -> Path:
    return BUILD / f"package-{runtime}.json"


def _files(code_dir: Path) -> Iterator[Path]:
    for path in sorted(code_dir.rglob("*")):
        if path.is_file():
            yield path


def write_zip(entries: Iterator[tuple[str, bytes]], target: Path, compress: bool = True) -> str:
    """Write ``(name, data)`` entries reproducibly; returns the zip's SHA-256."""
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    partial = target.with_suffix(".partial")
    with zipfile.ZipFile(partial, "w", method) as archive:
        for name, data in entries:
            info = zipfile.ZipInfo(name, FIXED_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = method
            archive.writestr(info, data, compresslevel=6 if compress else None)
    digest = hashlib.sha256(partial.read_bytes()).hexdigest()
    partial.replace(target)
    return digest


def zip_code(code_dir: Path, runtime: str, build: Path = BUILD) -> Package:
    """Zip the code root into build/ros-copy-image-<runtime>-<hash>.zip and write the manifest."""
    build.mkdir(parents=True, exist_ok=True)
    staging = build / f"ros-copy-image-{runtime}.zip"
    entries = ((path.relative_to(code_dir).as_posix(), path.read_bytes()) for path in _files(code_dir))
    digest = write_zip(entries, staging)
    final = build / f"ros-copy-image-{runtime}-{digest[:12]}.zip"
    for old in build.glob(f"ros-copy-image-{runtime}-*.zip"):
        if old != final:
            old.unlink()
    staging.replace(final)
    package = Package(final, digest, runtime, final.stat().st_size)
    manifest = {"zip": final.name, "sha256": digest, "runtime": runtime, "bytes": package.size}
    (build / f"package-{runtime}.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return package


def load(runtime: str = DEFAULT_RUNTIME) -> Package:
    manifest = json.loads(manifest_path(runtime).read_text(encoding="utf-8"))
    zip_path = BUILD / manifest["zip"]
    return Package(zip_path, manifest["sha256"], manifest["runtime"], int(manifest["bytes"]))


def _inputs() -> list[Path]:
    """What the package is built from: the function's sources and both runtimes' pins."""
    function = ROOT / "function"
    sources = [path for path in (function / "copyimage").glob("*.py")] + [function / "index.py"]
    return sources + sorted(function.glob("requirements*.txt"))


def stale(runtime: str = DEFAULT_RUNTIME) -> bool:
    manifest = manifest_path(runtime)
    if not manifest.exists():
        return True
    try:
        package = load(runtime)
    except (ValueError, KeyError):
        return True
    built = manifest.stat().st_mtime
    return not package.zip_path.exists() or any(path.stat().st_mtime > built for path in _inputs())


def ensure(runtime: str = DEFAULT_RUNTIME) -> Package:
    """The current package, built with ``make package`` first when it is missing or stale (once: a lock keeps
    parallel test workers from building it twice)."""
    BUILD.mkdir(exist_ok=True)
    with open(BUILD / ".package.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stale(runtime):
            command = ["make", "-s", "package", f"PYTHON_RUNTIME={runtime}", f"PYTHON={sys.executable}"]
            subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)  # noqa: S603 - our make
        return load(runtime)


def variant(package: Package, name: str, leave_out: str = "", add: dict[str, bytes] | None = None) -> Package:
    """A package derived from ``package``: entries under ``leave_out`` dropped, ``add`` added (uncompressed, so
    deriving one takes a second). Kept in build/variants/, reused while the package is the same."""
    folder = BUILD / "variants"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{name}-{package.short_hash}.zip"

    def entries() -> Iterator[tuple[str, bytes]]:
        with zipfile.ZipFile(package.zip_path) as archive:
            for info in archive.infolist():
                if not (leave_out and info.filename.startswith(leave_out)):
                    yield info.filename, archive.read(info)
        yield from sorted((add or {}).items())

    digest = write_zip(entries(), target, compress=False)
    return Package(target, digest, package.runtime, target.stat().st_size)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.package", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["zip"])
    parser.add_argument("--code", type=Path, default=BUILD / "code")
    parser.add_argument("--runtime", default=DEFAULT_RUNTIME)
    args = parser.parse_args(argv)
    package = zip_code(args.code, args.runtime)
    print(f"{package.zip_path.relative_to(ROOT)}: {package.size / 2**20:.1f} MiB, sha256 {package.sha256}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
