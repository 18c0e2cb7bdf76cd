"""The administration commands on a data directory, as a person types them (in process, through
Typer's runner): list and delete verbs, `repo create` that never changes what exists, refusal
without a data directory, and name errors that state the rule."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from ferry.cli import app

PASSWORD = "cli-admin-pass-1"
runner = CliRunner()


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("FERRY_DATA_DIR", "FERRY_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    return tmp_path / "region"


def ferry(data: Path | None, *args: str, code: int = 0) -> str:
    """`ferry ARGS --data DATA`; asserts the exit code and returns what was printed."""
    result: Result = runner.invoke(app, [*args, *(["--data", str(data)] if data else [])])
    assert result.exit_code == code, (args, result.output, result.exception)
    return result.output


def rows(output: str) -> list[list[str]]:
    """The cells of each row of a Rich table."""
    return [
        [cell.strip() for cell in line.strip("│ ").split("│")] for line in output.splitlines() if "│" in line
    ]


def test_admin_commands_refuse_without_a_data_directory(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for command in (
        ["user", "list"],
        ["user", "create", "bob", "--password", PASSWORD],
        ["org", "create", "team"],
        ["repo", "list"],
        ["key", "list"],
        ["grant", "list"],
        ["grant", "bob", "team"],
        ["migrate"],
    ):
        output = ferry(None, *command, code=2)
        assert len(output.strip().splitlines()) == 1, output
        assert "--data" in output and "FERRY_DATA_DIR" in output, output
    assert not (tmp_path / "ferry-data").exists()
    monkeypatch.setenv("FERRY_DATA_DIR", str(data))
    assert "bob" in ferry(None, "user", "create", "bob", "--password", PASSWORD, "--admin")
    assert (data / "ferry.db").exists()


def test_users_keys_organizations_repositories_and_grants_list_and_delete(data: Path) -> None:
    ferry(data, "user", "create", "owner", "--password", PASSWORD, "--admin")
    ferry(data, "user", "create", "bob", "--password", PASSWORD)
    users = {row[1]: row for row in rows(ferry(data, "user", "list"))}
    assert set(users) == {"owner", "bob"} and users["owner"][4] == "yes" and users["bob"][2] == "ferry"
    assert re.fullmatch(r"[0-9a-f]{32}", users["bob"][3])  # the account's domain id
    ak = re.search(r'"ak": "([A-Z0-9]{20})"', ferry(data, "key", "create", "bob"))
    assert ak is not None
    assert [r[:3] for r in rows(ferry(data, "key", "list"))] == [[ak.group(1), "bob", "yes"]]
    assert rows(ferry(data, "key", "list", "owner")) == []

    ferry(data, "org", "create", "team", "--owner", "owner")
    ferry(data, "org", "create", "empty", "--owner", "owner")
    ferry(data, "grant", "bob", "team", "--auth", "3")  # the first form still works
    ferry(data, "grant", "add", "bob", "empty", "--auth", "1")
    grants = rows(ferry(data, "grant", "list", "team"))
    assert grants == [["team", "bob", users["bob"][0], "3 (edit)"]]  # the user id SWR's calls take
    assert len(rows(ferry(data, "grant", "list"))) == 2
    ferry(data, "grant", "revoke", "bob", "empty")
    assert "holds no grant" in ferry(data, "grant", "revoke", "bob", "empty", code=1)
    assert [g[0] for g in rows(ferry(data, "grant", "list"))] == ["team"]

    ferry(data, "repo", "create", "team/app")
    ferry(data, "repo", "create", "team/web/frontend", "--public")
    repositories = {row[1]: row for row in rows(ferry(data, "repo", "list", "team"))}
    assert repositories.keys() == {"team/app", "team/web/frontend"}
    assert repositories["team/web/frontend"][2] == "public" and repositories["team/app"][2] == "private"
    organizations = {row[1]: row for row in rows(ferry(data, "org", "list"))}
    assert organizations["team"][3] == "2" and organizations["empty"][3] == "0"

    refused = ferry(data, "org", "delete", "team", code=1)
    assert "still has 2 repositories" in refused and "--force" in refused, refused
    ferry(data, "repo", "delete", "team/app")
    assert [r[1] for r in rows(ferry(data, "repo", "list"))] == ["team/web/frontend"]
    assert "repository team/app not known" in ferry(data, "repo", "delete", "team/app", code=1)
    ferry(data, "org", "delete", "empty")
    ferry(data, "org", "delete", "team", "--force")
    assert rows(ferry(data, "org", "list")) == [] and rows(ferry(data, "repo", "list")) == []
    assert "no organization 'team'" in ferry(data, "org", "delete", "team", code=1)

    ferry(data, "user", "delete", "bob")
    assert [r[1] for r in rows(ferry(data, "user", "list"))] == ["owner"]
    assert rows(ferry(data, "key", "list")) == []  # bob's key went with bob
    assert "no user 'bob'" in ferry(data, "user", "delete", "bob", code=1)


def test_repo_create_never_changes_an_existing_repository(data: Path) -> None:
    ferry(data, "user", "create", "owner", "--password", PASSWORD, "--admin")
    ferry(data, "org", "create", "team", "--owner", "owner")
    assert "created repository team/app (public)" in ferry(data, "repo", "create", "team/app", "--public")

    refused = ferry(data, "repo", "create", "team/app", "--private", code=1)
    assert "already exists and is public" in refused and "ferry repo update team/app --private" in refused
    assert rows(ferry(data, "repo", "list"))[0][2] == "public"
    for same in (["--public"], []):
        assert "already exists (public); nothing changed" in ferry(data, "repo", "create", "team/app", *same)
    ferry(data, "repo", "update", "team/app", "--private")
    assert rows(ferry(data, "repo", "list"))[0][2] == "private"
    assert "organization" in ferry(data, "repo", "create", "nosuch/app", code=1)


def test_invalid_names_state_the_rule_they_break(data: Path) -> None:
    ferry(data, "user", "create", "owner", "--password", PASSWORD, "--admin")
    output = ferry(data, "org", "create", "Team", "--owner", "owner", code=1)
    assert "invalid organization name 'Team'" in output and "starting with a letter" in output, output
    output = ferry(data, "repo", "create", "team/App", code=2)
    assert "invalid repository name 'App'" in output and "lowercase letters and digits" in output, output
    output = ferry(data, "repo", "create", "9team/app", code=2)
    assert "invalid organization name '9team'" in output and "starting with a letter" in output, output
    assert "reserved" in ferry(data, "org", "create", "manage", "--owner", "owner", code=1)


def test_serve_on_a_port_in_use_says_so_in_one_line(data: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        output = ferry(data, "serve", "--port", str(port), code=1)
    assert f"port {port} on 127.0.0.1 is in use" in output
    assert "--port" in output
    assert "Traceback" not in output
    assert not data.exists()  # refused before anything was created
