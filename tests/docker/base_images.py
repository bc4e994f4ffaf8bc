"""Local stand-ins for the official base images, built from Debian packages.

No container registry is reachable where the tests run, so `make test-docker` cannot pull
``python``, ``postgres``, ``redis`` or ``nginx``. Instead a minimal Debian root file system is
made with ``debootstrap`` (from the mirror apt already uses) and imported as an image, and each
stand-in is a small Dockerfile on top of it (``tests/docker/base-images/NAME``) that behaves
like the official image where the compose file relies on it.

Images are cached by name: each tag carries a hash of its recipe, so a second run builds
nothing and a changed recipe builds a new tag. Run as a script to build them all:
``python -m tests.docker.base_images``.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RECIPES = HERE / "base-images"
SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
REPOSITORY = "neuroroute-test"
STAND_INS = ("python", "postgres", "redis", "nginx")
# The host's trust store: it holds the CA of this network's TLS interception, which pip in
# the gateway's build needs to reach PyPI (see base-images/python/Dockerfile).
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# Classic builder: this Docker has no buildx, and the recipes need nothing newer.
BUILD_ENV = {**os.environ, "DOCKER_BUILDKIT": "0"}


def log(message: str) -> None:
    print(f"base-images: {message}", file=sys.stderr, flush=True)


def apt_mirror(sources: Path = Path("/etc/apt")) -> str:
    """The Debian mirror apt uses for the main suite (deb822 or one-line format)."""
    files = sorted(sources.glob("sources.list.d/*.sources")) + sorted(
        sources.glob("sources.list.d/*.list")) + [sources / "sources.list"]
    for path in files:
        if not path.is_file():
            continue
        text = path.read_text(errors="replace")
        for stanza in re.split(r"\n\s*\n", text):
            uris = re.search(r"^URIs:\s*(\S+)", stanza, re.MULTILINE)
            suites = re.search(r"^Suites:(.*)$", stanza, re.MULTILINE)
            if uris and suites and SUITE in suites.group(1).split():
                return uris.group(1).rstrip("/")
        for line in text.splitlines():
            match = re.match(rf"\s*deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+{SUITE}\s", line)
            if match:
                return match.group(1).rstrip("/")
    return DEFAULT_MIRROR


def image_exists(name: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", name], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, check=False).returncode == 0


def _digest(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()[:12]


def debian_image(mirror: str) -> str:
    """A minbase Debian root file system imported as an image (about a minute, once)."""
    name = f"{REPOSITORY}/debian:{SUITE}-{_digest(b'minbase', mirror.encode())}"
    if image_exists(name):
        return name
    if shutil.which("debootstrap") is None:
        raise SystemExit("base-images: debootstrap is not installed (apt-get install debootstrap)")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="neuroroute-rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        log(f"debootstrap {SUITE} from {mirror}")
        subprocess.run(["debootstrap", "--variant=minbase", SUITE, str(rootfs), mirror],
                       check=True, stdout=subprocess.DEVNULL, timeout=900)
        with subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."],
                              stdout=subprocess.PIPE) as tar:
            subprocess.run(["docker", "import", "-", name], stdin=tar.stdout, check=True,
                           stdout=subprocess.DEVNULL, timeout=300)
        if tar.returncode != 0:
            raise SystemExit("base-images: tar of the root file system failed")
    log(f"{name} imported in {time.monotonic() - started:.0f} s")
    return name


def recipe_digest(recipe: Path, base: str, extra: bytes = b"") -> str:
    files = sorted(p for p in recipe.rglob("*") if p.is_file())
    return _digest(base.encode(), extra,
                   *(p.relative_to(recipe).as_posix().encode() + p.read_bytes() for p in files))


def stand_in(kind: str, base: str) -> str:
    """The stand-in image for ``kind`` (one of STAND_INS), built on ``base`` if missing."""
    recipe = RECIPES / kind
    ca = HOST_CA_BUNDLE.read_bytes() if kind == "python" else b""
    name = f"{REPOSITORY}/{kind}:{recipe_digest(recipe, base, ca)}"
    if image_exists(name):
        return name
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"neuroroute-{kind}-") as tmp:
        context = Path(tmp) / "context"
        shutil.copytree(recipe, context)
        if ca:
            (context / "host-ca-bundle.crt").write_bytes(ca)
        output = Path(tmp) / "build.log"
        with output.open("wb") as fh:
            done = subprocess.run(["docker", "build", "--build-arg", f"BASE={base}", "-t", name,
                                   str(context)], stdout=fh, stderr=subprocess.STDOUT,
                                  env=BUILD_ENV, check=False, timeout=900)
        if done.returncode != 0:
            raise SystemExit(f"base-images: building {name} failed:\n"
                             f"{output.read_text(errors='replace')[-4000:]}")
    log(f"{name} built in {time.monotonic() - started:.0f} s")
    return name


def build_all() -> dict[str, str]:
    """Every stand-in, by kind: {"python": "neuroroute-test/python:<hash>", ...}."""
    base = debian_image(apt_mirror())
    return {kind: stand_in(kind, base) for kind in STAND_INS}


if __name__ == "__main__":
    for kind, image in build_all().items():
        print(f"{kind}={image}")
