"""The SWR page's own sample, and a tour beyond it, in the Java and the Go SDK, against Ferry.

The page shows `CreateImageSyncRepo` in Java, Python and Go. The Java and Go programs under
tests/clients are the page's samples changed only where they must be (see their headers); the
SDKs' own region override (`HUAWEICLOUD_SDK_REGION_SWR_CN_NORTH_4`) points `cn-north-4` at
region A. They are built against the official SDKs (Maven Central, the Go module proxy) by
tests/support/clients.py and run against two real regions.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.support import clients
from tests.support.images import make_image, push_image
from tests.support.names import unique
from tests.support.regions import ACCESS_KEY, PROJECT_ID, SECRET_KEY, Regions, make_regions
from tests.support.registry_client import RegistryClient
from tests.support.server import ADMIN_PASSWORD, FerryServer
from tests.support.sync_helpers import create_org, create_repo, sdk, wait_for, wait_tag

A, B = "cn-north-4", "cn-east-3"
LANGUAGES = ["java", "go"]


@pytest.fixture(scope="module")
def regions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Regions]:
    regions = make_regions(tmp_path_factory.mktemp("sdks"), [A, B])
    yield regions
    regions.stop()


@dataclass(frozen=True)
class Programs:
    """The page's sample and the tour of one SDK language."""

    language: str
    sample: list[str]
    tour: list[str]

    def env(self, regions: Regions, **values: str) -> dict[str, str]:
        endpoint = regions[A].url
        return (
            os.environ
            | {
                "CLOUD_SDK_AK": ACCESS_KEY,
                "CLOUD_SDK_SK": SECRET_KEY,
                "CLOUD_SDK_PROJECT_ID": PROJECT_ID,
                # The SDKs' own per-region endpoint override: cn-north-4 (and cn-east-3) are Ferry.
                "HUAWEICLOUD_SDK_REGION_SWR_CN_NORTH_4": endpoint,
                "HUAWEICLOUD_SDK_REGION_SWR_CN_EAST_3": regions[B].url,
            }
            | values
        )

    def run_sample(self, regions: Regions, **values: str) -> str:
        result = subprocess.run(
            self.sample, env=self.env(regions, **values), capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stderr[-3000:]
        return result.stdout

    def run_tour(self, regions: Regions, region: str, namespace: str, *step: str) -> dict[str, Any]:
        values = {"TOUR_NAMESPACE": namespace, "TOUR_REPOSITORY": "tour", "TOUR_REGION_ID": region}
        values["TOUR_REMOTE_REGION_ID"] = B
        result = subprocess.run(
            [*self.tour, *step], env=self.env(regions, **values), capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stderr[-3000:]
        line = [ln for ln in result.stdout.splitlines() if ln.startswith("{")][-1]
        answer: dict[str, Any] = json.loads(line)
        return answer


@pytest.fixture(scope="module", params=LANGUAGES)
def programs(request: pytest.FixtureRequest) -> Programs:
    if request.param == "java":
        java = clients.java_programs()
        return Programs(
            "java",
            java.command("com.huaweicloud.sdk.test.CreateImageSyncRepoSolution"),
            java.command("ferry.tour.Tour"),
        )
    built = clients.go_programs()
    return Programs("go", [str(built / "create_image_sync_repo")], [str(built / "tour")])


def sample_error(programs: Programs, output: str) -> tuple[int, str]:
    """The status and SWR error code the sample printed for a refused call."""
    if programs.language == "java":
        # e.getHttpStatusCode(), e.getRequestId(), e.getErrorCode(), e.getErrorMsg(), a line each
        lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
        status_at = max(i for i, ln in enumerate(lines) if re.fullmatch(r"\d{3}", ln))
        return int(lines[status_at]), lines[status_at + 2]
    error = json.loads(output.strip().splitlines()[-1])  # fmt.Println(err): the error as JSON
    return int(error["status_code"]), str(error["error_code"])


def test_the_page_sample_creates_the_rule_and_a_push_to_a_appears_in_b(
    regions: Regions, programs: Programs
) -> None:
    a, b = regions[A], regions[B]
    org = unique(f"seed{programs.language}")
    create_org(a, org)
    create_org(b, org)
    create_repo(a, org, "hello")
    output = programs.run_sample(
        regions, SWR_NAMESPACE=org, SWR_REPOSITORY="hello", SWR_REMOTE_NAMESPACE=org, SWR_REMOTE_REGION_ID=B
    )
    assert "CreateImageSyncRepoResponse" in output, output
    assert not re.search(r"SVCSTG|APIGW", output), output
    [rule] = _rules(a, org, "hello")
    assert (rule.remote_region_id, rule.remote_namespace, rule.sync_auto, rule.override) == (
        B,
        org,
        True,
        True,
    )

    image = make_image(unique("seed"))
    push_image(RegistryClient(a.url, "admin", ADMIN_PASSWORD), f"{org}/hello", "v1", image)
    wait_tag(b, f"{org}/hello", "v1", image.digest)


def _rules(server: FerryServer, namespace: str, repository: str) -> list[Any]:
    from huaweicloudsdkswr.v2 import ListImageAutoSyncReposDetailsRequest

    listed = sdk(server).list_image_auto_sync_repos_details(
        ListImageAutoSyncReposDetailsRequest(namespace, repository)
    )
    return list(listed.body or [])


def test_the_page_sample_with_bad_input_prints_the_documented_codes(
    regions: Regions, programs: Programs
) -> None:
    a, b = regions[A], regions[B]
    org = unique(f"bad{programs.language}")
    create_org(a, org)
    create_org(b, org)
    create_repo(a, org, "hello")
    good = {"SWR_NAMESPACE": org, "SWR_REPOSITORY": "hello", "SWR_REMOTE_NAMESPACE": org}
    good["SWR_REMOTE_REGION_ID"] = B
    cases = {
        "missing target organization": (
            {"SWR_REMOTE_NAMESPACE": unique("absent")},
            (404, "SVCSTG.SWR.4040058"),
        ),
        "missing source organization": ({"SWR_NAMESPACE": unique("absent")}, (404, "SVCSTG.SWR.4040058")),
        "invalid namespace": ({"SWR_REMOTE_NAMESPACE": "Bad..Org"}, (400, "SVCSTG.SWR.4001028")),
        "unknown region": ({"SWR_REMOTE_REGION_ID": "xx-nowhere-9"}, (400, "SVCSTG.SWR.4000014")),
        "wrong SK": ({"CLOUD_SDK_SK": SECRET_KEY[::-1]}, (401, "APIGW.0301")),
    }
    for what, (change, expected) in cases.items():
        output = programs.run_sample(regions, **(good | change))
        assert sample_error(programs, output) == expected, (what, output[-2000:])
    assert _rules(a, org, "hello") == []


def test_a_tour_of_the_api(regions: Regions, programs: Programs) -> None:
    a, b = regions[A], regions[B]
    org = unique(f"tour{programs.language}")
    create_org(b, org)
    setup = programs.run_tour(regions, A, org, "setup")
    assert setup == {"step": "setup", "namespace": org, "ok": True}, setup
    again = programs.run_tour(regions, A, org, "again")
    assert (again["ok"], again["status"], again["errorCode"]) == (False, 409, "SVCSTG.SWR.4090060"), again
    assert again["requestId"]

    image = make_image(unique("tour"))
    push_image(RegistryClient(a.url, "admin", ADMIN_PASSWORD), f"{org}/tour", "v1", image)
    assert programs.run_tour(regions, A, org, "tags")["tags"] == ["v1"]

    synced = programs.run_tour(regions, A, org, "sync", "v1,nosuch")
    assert (synced["ok"], synced["failed"]) == (True, ["nosuch"]), synced
    wait_tag(b, f"{org}/tour", "v1", image.digest)

    def finished() -> dict[str, Any] | None:
        answer = programs.run_tour(regions, A, org, "jobs")
        return answer if answer["jobs"] and answer["jobs"][0]["status"] == "success" else None

    jobs = wait_for(finished, "the manual sync job to succeed")
    assert jobs["jobs"] == [{"tag": "v1", "status": "success", "remoteRegionId": B}]
    assert jobs["contentRange"] == "0-1/1"

    # A rule made by the page's sample, listed and deleted by the tour.
    programs.run_sample(
        regions, SWR_NAMESPACE=org, SWR_REPOSITORY="tour", SWR_REMOTE_NAMESPACE=org, SWR_REMOTE_REGION_ID=B
    )
    assert programs.run_tour(regions, A, org, "rules")["rules"] == 1
    assert programs.run_tour(regions, A, org, "delete-rule")["ok"] is True
    assert programs.run_tour(regions, A, org, "rules")["rules"] == 0
    missing = programs.run_tour(regions, A, org, "delete-rule")
    assert (missing["ok"], missing["status"]) == (False, 404), missing
