"""Password checks: right and wrong answers, and what a burst of identical logins costs."""

from __future__ import annotations

import asyncio

import pytest

from ferry.identity import passwords


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every argon2 verification that really runs, by the password it checked."""
    calls: list[str] = []
    real = passwords._verify

    def counting(password_hash: str, password: str) -> bool:
        calls.append(password)
        return real(password_hash, password)

    monkeypatch.setattr(passwords, "_verify", counting)
    monkeypatch.setattr(passwords, "_verified", type(passwords._verified)())
    return calls


async def test_eight_identical_logins_at_once_cost_one_check(counted: list[str]) -> None:
    stored = passwords.hash_password("right-password-1")
    answers = await asyncio.gather(*(passwords.verify_password(stored, "right-password-1") for _ in range(8)))
    assert answers == [True] * 8
    assert counted == ["right-password-1"]
    assert await passwords.verify_password(stored, "right-password-1")  # remembered
    assert counted == ["right-password-1"]


async def test_wrong_passwords_are_refused_and_never_remembered(counted: list[str]) -> None:
    stored = passwords.hash_password("right-password-1")
    answers = await asyncio.gather(*(passwords.verify_password(stored, "wrong") for _ in range(4)))
    assert answers == [False] * 4
    assert counted == ["wrong"]  # shared while in flight
    assert not await passwords.verify_password(stored, "wrong")
    assert counted == ["wrong", "wrong"]  # but checked again afterwards
    assert await passwords.verify_password(stored, "right-password-1")


async def test_different_passwords_are_checked_each_on_their_own(counted: list[str]) -> None:
    stored = passwords.hash_password("right-password-1")
    answers = await asyncio.gather(
        passwords.verify_password(stored, "right-password-1"), passwords.verify_password(stored, "guess")
    )
    assert answers == [True, False]
    assert sorted(counted) == ["guess", "right-password-1"]


async def test_a_caller_that_goes_away_does_not_cancel_the_others_check(counted: list[str]) -> None:
    stored = passwords.hash_password("right-password-1")
    leaving = asyncio.ensure_future(passwords.verify_password(stored, "right-password-1"))
    staying = asyncio.ensure_future(passwords.verify_password(stored, "right-password-1"))
    await asyncio.sleep(0)
    leaving.cancel()
    assert await staying
    assert counted == ["right-password-1"]
