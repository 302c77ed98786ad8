"""Console users as the domain accepts them, and the console's files as the gateway serves them."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.gateway.domain.users import new_user
from services.gateway.handlers.console import API_DOCUMENT, ConsoleAssets
from services.kit.errors import InvalidArgument, NotFound


def test_a_person_with_known_roles_and_a_long_enough_password_is_a_user() -> None:
    user = new_user("ana", "long-enough-pass", ["ops", "supervisor"], "")
    assert user.roles == frozenset({"ops", "supervisor"})
    customer = new_user("buyer-42", "long-enough-pass", ["customer"], "buyer-42")
    assert customer.customer_id == "buyer-42"


@pytest.mark.parametrize(
    ("subject", "password", "roles", "customer_id", "fields"),
    [
        ("a b", "long-enough-pass", ["ops"], "", ["subject"]),
        ("ana", "short", ["ops"], "", ["password"]),
        ("ana", "x" * 257, ["ops"], "", ["password"]),
        ("ana", "long-enough-pass", [], "", ["roles"]),
        ("ana", "long-enough-pass", ["root"], "", ["roles"]),
        ("ana", "long-enough-pass", ["service"], "", ["roles"]),
        ("ana", "long-enough-pass", ["carrier"], "", ["roles"]),
        ("ana", "long-enough-pass", ["customer"], "", ["customer_id"]),
        ("ana", "long-enough-pass", ["customer", "ops"], "buyer-1", ["roles"]),
        ("ana", "long-enough-pass", ["ops"], "buyer-1", ["customer_id"]),
        ("", "short", [], "", ["subject", "password", "roles"]),
    ],
)
def test_a_bad_user_is_refused_naming_every_wrong_field(
    subject: str, password: str, roles: list[str], customer_id: str, fields: list[str]
) -> None:
    with pytest.raises(InvalidArgument) as refused:
        new_user(subject, password, roles, customer_id)
    assert [field for field, _ in refused.value.violations] == fields


def test_the_console_serves_its_page_for_nothing_and_refuses_any_other_name(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<!doctype html>")
    (tmp_path / "app.js").write_text("1")
    (tmp_path / "notes.txt").write_text("not served")
    assets = ConsoleAssets(tmp_path)
    assert assets.get("").content_type.startswith("text/html")
    assert assets.get("/").data == b"<!doctype html>"
    assert assets.get("app.js").content_type.startswith("text/javascript")
    for name in ("notes.txt", "../index.html", "nope.js", "sub/app.js"):
        with pytest.raises(NotFound):
            assets.get(name)


def test_the_shipped_console_has_every_script_its_page_loads() -> None:
    assets = ConsoleAssets()
    page = assets.get("").data.decode()
    for name in ("i18n.js", "core.js", "dashboard.js", "cs360.js", "queues.js", "customer.js", "start.js"):
        assert f'src="/console/{name}"' in page
        assert assets.get(name).data


def test_the_console_serves_the_checked_in_openapi_document_and_refuses_to_start_without_it(
    tmp_path: Path,
) -> None:
    served = ConsoleAssets().get("openapi.json")
    assert served.content_type == "application/json"
    assert served.data == API_DOCUMENT.read_bytes()
    (tmp_path / "index.html").write_text("<!doctype html>")
    with pytest.raises(RuntimeError, match="omsctl contracts"):
        ConsoleAssets(tmp_path, documents={"openapi.json": tmp_path / "openapi.json"})
