"""Clients not written in Python, fetched and built by the tests themselves, cached per machine.

- Go tools (crane, regctl, the oras CLI, cosign) at pinned versions, `go install`ed from the Go
  module proxy;
- the SWR page's Go sample and the Go tour (tests/clients/go), against huaweicloud-sdk-go-v3;
- the SWR page's Java sample and the Java tour (tests/clients/java), built with Maven against
  huaweicloud-sdk-swr from Maven Central.

Everything lands under ~/.cache/ferry-test-clients (of the real home: the test session points
HOME elsewhere), keyed by version or by a hash of the sources, and the Go and Maven caches of
that home are used, so a second run on one machine builds nothing.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REAL_HOME = Path(os.environ.get("FERRY_TEST_REAL_HOME") or Path.home())
CACHE = REAL_HOME / ".cache" / "ferry-test-clients"
SOURCES = Path(__file__).resolve().parents[1] / "clients"

GO_TOOLS = {
    "crane": ("github.com/google/go-containerregistry/cmd/crane", "v0.22.1"),
    "regctl": ("github.com/regclient/regclient/cmd/regctl", "v0.11.7"),
    "oras": ("oras.land/oras/cmd/oras", "v1.3.6"),
    "cosign": ("github.com/sigstore/cosign/v3/cmd/cosign", "v3.1.3"),
}
JAVA_SDK_VERSION = "3.1.143"  # also in tests/clients/java/pom.xml
GO_SDK_VERSION = "v0.1.207"  # also in tests/clients/go/go.mod


class ToolchainMissing(RuntimeError):
    pass


def _require(command: str) -> str:
    found = shutil.which(command)
    if found is None:
        raise ToolchainMissing(
            f"{command} is not installed (make test installs it: scripts/install-system-deps.sh)"
        )
    return found


def _build_env() -> dict[str, str]:
    """The real home's Go and Maven caches, whatever HOME the test session set."""
    return os.environ | {
        "HOME": str(REAL_HOME),
        "GOPATH": str(REAL_HOME / "go"),
        "GOMODCACHE": str(REAL_HOME / "go" / "pkg" / "mod"),
        "GOCACHE": str(REAL_HOME / ".cache" / "go-build"),
        "GOFLAGS": "-modcacherw",
        "CGO_ENABLED": "0",
    }


def _run(command: list[str], cwd: Path | None = None, extra: dict[str, str] | None = None) -> None:
    env = _build_env() | (extra or {})
    # At the lowest priority: a build runs beside the tests (prebuild_in_background).
    niced = ["nice", "-n", "19", *command]
    result = subprocess.run(niced, cwd=cwd, env=env, capture_output=True, text=True, timeout=1800)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}")


_building: dict[Path, threading.Lock] = {}
_building_guard = threading.Lock()


def _built_once(target: Path, build: Callable[[Path], None]) -> Path:
    """`target`, built by `build(directory)` unless an earlier run left it complete; a test that
    needs it while the background build is making it waits for that build."""
    with _building_guard:
        lock = _building.setdefault(target, threading.Lock())
    with lock:
        return _build_unless_complete(target, build)


def _build_unless_complete(target: Path, build: Callable[[Path], None]) -> Path:
    if (target / ".complete").exists():
        return target
    staging = target.with_name(f"{target.name}.{uuid.uuid4().hex[:8]}.tmp")
    staging.mkdir(parents=True)
    try:
        build(staging)
        (staging / ".complete").touch()
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _sources_key(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and "target" not in p.parts):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def go_tool(name: str) -> Path:
    """The binary of one pinned Go tool."""
    module, version = GO_TOOLS[name]
    go = _require("go")

    def install(directory: Path) -> None:
        (directory / "bin").mkdir()
        _run([go, "install", f"{module}@{version}"], extra={"GOBIN": str(directory / "bin")})

    return _built_once(CACHE / "go-tools" / f"{name}-{version}", install) / "bin" / name


def go_programs() -> Path:
    """A directory holding the Go sample (`create_image_sync_repo`) and the Go tour (`tour`)."""
    go, source = _require("go"), SOURCES / "go"

    def build(directory: Path) -> None:
        _run([go, "build", "-o", str(directory) + "/", "./..."], cwd=source)

    return _built_once(CACHE / "go-programs" / _sources_key(source), build)


@dataclass(frozen=True)
class JavaPrograms:
    classpath: str

    def command(self, main_class: str, *args: str) -> list[str]:
        return [_require("java"), "-cp", self.classpath, main_class, *args]


def java_programs() -> JavaPrograms:
    """The Java sample and the Java tour, compiled, with the SDK's jars on the class path."""
    mvn, source = _require("mvn"), SOURCES / "java"

    def build(directory: Path) -> None:
        _run(
            [
                mvn,
                "-q",
                "-B",
                f"-Dmaven.repo.local={REAL_HOME / '.m2' / 'repository'}",
                f"-Dferry.build.dir={directory}",
                "compile",
                "dependency:build-classpath",
                f"-Dmdep.outputFile={directory / 'classpath.txt'}",
            ],
            cwd=source,
        )

    built = _built_once(CACHE / "java-programs" / _sources_key(source), build)
    return JavaPrograms(f"{built / 'classes'}:{(built / 'classpath.txt').read_text().strip()}")


def prebuild_in_background() -> None:
    """Starts building every client in a thread, so that on a fresh machine the minutes of Go
    and Maven compiling overlap the tests that run before the first one needs them. A failure
    here is left to that test to report (it builds again and raises)."""

    def build_all() -> None:
        builders: list[Callable[[], object]] = [lambda n=n: go_tool(n) for n in GO_TOOLS]
        for builder in [*builders, go_programs, java_programs]:
            try:
                builder()
            except Exception:  # reported by the test that needs it
                pass

    threading.Thread(target=build_all, name="client-prebuild", daemon=True).start()
