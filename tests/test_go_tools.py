"""The Go tools teams script registries with — crane, regctl, the oras CLI, cosign — against Ferry.

Each is `go install`ed at a pinned version by tests/support/clients.py. They push and read in
region A; what an automatic rule copies is then checked in region B with the same tools:
images, indexes, referrers, and cosign signatures in both of cosign's storage schemes.
"""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support import clients
from tests.support.layouts import multi_platform_layout
from tests.support.regions import Regions, make_regions
from tests.support.server import ADMIN_PASSWORD
from tests.support.sync_helpers import create_org, create_repo, create_rule, skopeo_push, wait_for

A, B = "cn-north-4", "cn-east-3"
ORG = "tools"
COSIGN_PASSWORD = "cosign-test-password"


@pytest.fixture(scope="module")
def regions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Regions]:
    regions = make_regions(tmp_path_factory.mktemp("gotools"), [A, B])
    for server in regions.servers.values():
        create_org(server, ORG)
    yield regions
    regions.stop()


def synced_repository(regions: Regions, name: str) -> str:
    """A repository of ORG in A whose every push goes to B (an automatic rule)."""
    create_repo(regions[A], ORG, name)
    assert create_rule(regions[A], ORG, name, B, ORG, sync_auto=True, override=True) == 200
    return f"{ORG}/{name}"


def tool(
    name: str, *args: str, cwd: Path | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(clients.go_tool(name)), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ | {"COSIGN_PASSWORD": COSIGN_PASSWORD},
    )
    if check:
        assert result.returncode == 0, (
            f"{name} {' '.join(args)}:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
        )
    return result


@pytest.fixture(scope="module")
def logged_in(regions: Regions) -> Regions:
    """crane writes the Docker config every tool reads; regctl also wants to know it is plain HTTP."""
    for server in regions.servers.values():
        tool("crane", "auth", "login", server.host, "-u", "admin", "-p", ADMIN_PASSWORD)
        tool("regctl", "registry", "set", "--tls", "disabled", server.host)
        tool("regctl", "registry", "login", server.host, "-u", "admin", "-p", ADMIN_PASSWORD)
    return regions


def eventually(what: str, check: Callable[[], object]) -> None:
    wait_for(lambda: check() or None, what, timeout=90)


def tags(host: str, name: str) -> list[str]:
    """What `crane ls` lists; nothing while the repository does not exist there yet."""
    listed = tool("crane", "ls", "--insecure", f"{host}/{name}", check=False)
    return sorted(listed.stdout.split()) if listed.returncode == 0 else []


def a_layer(directory: Path, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "hello.txt").write_text(text)
    layer = directory / "layer.tar"
    with tarfile.open(layer, "w") as tar:
        tar.add(directory / "hello.txt", arcname="hello.txt")
    return layer


def test_crane(logged_in: Regions, tmp_path: Path) -> None:
    a, b = logged_in[A].host, logged_in[B].host
    name = synced_repository(logged_in, "crane")
    text = f"pushed by crane {uuid.uuid4().hex}\n"
    tool("crane", "append", "--insecure", "-f", str(a_layer(tmp_path / "in", text)), "-t", f"{a}/{name}:v1")
    digest = tool("crane", "digest", "--insecure", f"{a}/{name}:v1").stdout.strip()
    assert tool("crane", "ls", "--insecure", f"{a}/{name}").stdout.split() == ["v1"]
    assert name in tool("crane", "catalog", "--insecure", a).stdout.split()
    tool("crane", "pull", "--insecure", f"{a}/{name}:v1", str(tmp_path / "pulled.tar"))
    with tarfile.open(tmp_path / "pulled.tar") as image:
        assert "manifest.json" in image.getnames()

    # The rule copied it to B; crane reads it there.
    eventually("crane's push to reach B", lambda: tags(b, name) == ["v1"])
    assert tool("crane", "digest", "--insecure", f"{b}/{name}:v1").stdout.strip() == digest

    # A copy between the regions by crane itself, and a delete.
    tool("crane", "copy", "--insecure", f"{a}/{name}:v1", f"{b}/{ORG}/crane-copy:v1")
    assert tool("crane", "digest", "--insecure", f"{b}/{ORG}/crane-copy:v1").stdout.strip() == digest
    tool("crane", "delete", "--insecure", f"{b}/{ORG}/crane-copy@{digest}")
    gone = tool("crane", "manifest", "--insecure", f"{b}/{ORG}/crane-copy:v1", check=False)
    assert gone.returncode != 0 and "MANIFEST_UNKNOWN" in gone.stderr


def test_crane_picks_one_platform_of_an_index(logged_in: Regions, tmp_path: Path) -> None:
    a, b = logged_in[A], logged_in[B]
    name = synced_repository(logged_in, "multi")
    layout = multi_platform_layout(tmp_path / "layout")
    skopeo_push(a, layout.root, layout.tag, f"{name}:{layout.tag}")
    index = json.loads(tool("crane", "manifest", "--insecure", f"{a.host}/{name}:{layout.tag}").stdout)
    arm = next(m["digest"] for m in index["manifests"] if m["platform"]["architecture"] == "arm64")
    picked = tool(
        "crane", "digest", "--insecure", "--platform", "linux/arm64", f"{a.host}/{name}:{layout.tag}"
    )
    assert picked.stdout.strip() == arm
    eventually("the index to reach B", lambda: tags(b.host, name) == [layout.tag])
    from_b = tool(
        "crane", "digest", "--insecure", "--platform", "linux/arm64", f"{b.host}/{name}:{layout.tag}"
    )
    assert from_b.stdout.strip() == arm


def test_regctl(logged_in: Regions, tmp_path: Path) -> None:
    a, b = logged_in[A].host, logged_in[B].host
    name = synced_repository(logged_in, "regctl")
    source = synced_repository(logged_in, "regctl-source")
    tool(
        "crane",
        "append",
        "--insecure",
        "-f",
        str(a_layer(tmp_path / "in", "regctl\n")),
        "-t",
        f"{a}/{source}:v1",
    )
    tool("regctl", "image", "copy", f"{a}/{source}:v1", f"{a}/{name}:v1")
    assert tool("regctl", "tag", "ls", f"{a}/{name}").stdout.split() == ["v1"]
    manifest = tool("regctl", "manifest", "get", "--format", "raw-body", f"{a}/{name}:v1").stdout
    (tmp_path / "manifest.json").write_text(manifest)
    put = subprocess.run(
        [
            str(clients.go_tool("regctl")),
            "manifest",
            "put",
            "--content-type",
            json.loads(manifest)["mediaType"],
            f"{a}/{name}:put",
        ],
        input=manifest,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert put.returncode == 0, put.stderr
    assert sorted(tool("regctl", "tag", "ls", f"{a}/{name}").stdout.split()) == ["put", "v1"]
    layer = json.loads(manifest)["layers"][0]["digest"]
    blob = subprocess.run(
        [str(clients.go_tool("regctl")), "blob", "get", f"{a}/{name}", layer],
        capture_output=True,
        timeout=120,
    )
    assert blob.returncode == 0 and len(blob.stdout) == json.loads(manifest)["layers"][0]["size"]

    # An artifact that refers to the image (OCI 1.1 referrers), listed, read back, and synced.
    (tmp_path / "sbom.json").write_text(json.dumps({"packages": ["regctl"]}))
    sbom_type = "application/vnd.example.sbom.v1+json"
    tool(
        "regctl",
        "artifact",
        "put",
        "--subject",
        f"{a}/{name}:v1",
        "--artifact-type",
        sbom_type,
        "--file",
        str(tmp_path / "sbom.json"),
        "--file-media-type",
        "application/json",
    )

    def referrers(host: str) -> list[str]:
        listed = tool(
            "regctl", "artifact", "list", "--format", "{{jsonPretty .}}", f"{host}/{name}:v1"
        ).stdout
        return [d.get("artifactType", "") for d in json.loads(listed).get("descriptors") or []]

    assert referrers(a) == [sbom_type]
    got = tool(
        "regctl", "artifact", "get", "--subject", f"{a}/{name}:v1", "--filter-artifact-type", sbom_type
    )
    assert json.loads(got.stdout) == {"packages": ["regctl"]}
    eventually("the referrer to reach B", lambda: referrers(b) == [sbom_type])


def test_oras_cli(logged_in: Regions, tmp_path: Path) -> None:
    a, b = logged_in[A].host, logged_in[B].host
    name = synced_repository(logged_in, "oras")
    for host in (a, b):
        tool("oras", "login", "--plain-http", "-u", "admin", "-p", ADMIN_PASSWORD, host)
    (tmp_path / "notes.txt").write_text("carried by the oras CLI\n")
    tool("oras", "push", "--plain-http", f"{a}/{name}:v1", "notes.txt:text/plain", cwd=tmp_path)
    tool("oras", "pull", "--plain-http", f"{a}/{name}:v1", "-o", str(tmp_path / "out"))
    assert (tmp_path / "out" / "notes.txt").read_text() == "carried by the oras CLI\n"
    (tmp_path / "sig.txt").write_text("a signature\n")
    tool(
        "oras",
        "attach",
        "--plain-http",
        "--artifact-type",
        "application/vnd.example.signature",
        f"{a}/{name}:v1",
        "sig.txt:text/plain",
        cwd=tmp_path,
    )

    def discovered(host: str) -> list[str]:
        """The referrers' artifact types; none while v1 itself has not reached the host."""
        result = tool(
            "oras", "discover", "--plain-http", "--format", "json", f"{host}/{name}:v1", check=False
        )
        if result.returncode != 0:
            assert "not found" in result.stderr, result.stderr
            return []
        found = json.loads(result.stdout)
        return [m.get("artifactType", "") for m in found.get("referrers") or found.get("manifests") or []]

    assert discovered(a) == ["application/vnd.example.signature"]
    eventually(
        "the attached artifact to reach B", lambda: discovered(b) == ["application/vnd.example.signature"]
    )
    tool("oras", "pull", "--plain-http", f"{b}/{name}:v1", "-o", str(tmp_path / "from-b"))
    assert (tmp_path / "from-b" / "notes.txt").read_text() == "carried by the oras CLI\n"


COSIGN_HTTP = ("--allow-http-registry", "--allow-insecure-registry")


@pytest.mark.parametrize("scheme", ["oci-1-1", "legacy"])
def test_cosign_signs_in_a_and_verifies_in_b(logged_in: Regions, tmp_path: Path, scheme: str) -> None:
    a, b = logged_in[A].host, logged_in[B].host
    name = synced_repository(logged_in, f"cosign-{scheme.replace('.', '')}")
    tool("cosign", "generate-key-pair", cwd=tmp_path)
    layer = a_layer(tmp_path / "in", f"signed {scheme} {uuid.uuid4().hex}\n")
    tool("crane", "append", "--insecure", "-f", str(layer), "-t", f"{a}/{name}:v1")
    digest = tool("crane", "digest", "--insecure", f"{a}/{name}:v1").stdout.strip()
    # The signature is pushed after the image: it must follow the image to B on its own.
    eventually("the image to reach B", lambda: tags(b, name) == ["v1"])
    legacy = ("--new-bundle-format=false", "--registry-referrers-mode=legacy") if scheme == "legacy" else ()
    tool(
        "cosign",
        "sign",
        "--key",
        "cosign.key",
        "--use-signing-config=false",
        "--tlog-upload=false",
        "--yes",
        *COSIGN_HTTP,
        *legacy,
        f"{a}/{name}@{digest}",
        cwd=tmp_path,
    )
    verify_legacy = ("--new-bundle-format=false",) if scheme == "legacy" else ()

    def verified(host: str) -> bool:
        result = tool(
            "cosign",
            "verify",
            "--key",
            "cosign.pub",
            "--insecure-ignore-tlog",
            *COSIGN_HTTP,
            *verify_legacy,
            f"{host}/{name}@{digest}",
            cwd=tmp_path,
            check=False,
        )
        return result.returncode == 0 and digest in result.stdout

    assert verified(a)
    eventually("cosign verify to pass against B", lambda: verified(b))
    if scheme == "legacy":
        signature_tag = digest.replace(":", "-") + ".sig"
        assert signature_tag in tool("crane", "ls", "--insecure", f"{b}/{name}").stdout.split()
