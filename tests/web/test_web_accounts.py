"""The account rules outside the views (kiosk.web.accounts), the admin area's blueprints by
concern, the vocabulary in the forms, and the Excel BOM on streamed downloads."""

from __future__ import annotations

import pytest
from flask import Flask, Response
from flask.testing import FlaskClient
from web_helpers import ADMIN, MANAGER

from kiosk.errors import LastAdmin, WebError
from kiosk.store import Database, get_user, list_users
from kiosk.vocabulary import PERSON_EVENT_KINDS, LeaveKind, Role, values
from kiosk.web import accounts
from kiosk.web.downloads import UTF8_BOM, add_excel_bom


@pytest.mark.parametrize("change", [
    lambda db: accounts.set_account_active(db, ADMIN[0], False, actor="t", me=ADMIN[0]),
    lambda db: accounts.set_account_password(db, ADMIN[0], "a-new-password-1", actor="t", me=ADMIN[0]),
    lambda db: accounts.set_account_role(db, ADMIN[0], "manager", actor="t", me=ADMIN[0]),
    lambda db: accounts.remove_account(db, ADMIN[0], actor="t", me=ADMIN[0], typed=ADMIN[0]),
])
def test_nobody_changes_their_own_account_here(app: Flask, db: Database, change) -> None:
    before = get_user(db, ADMIN[0])
    with pytest.raises(WebError, match="your own account"):
        change(db)
    assert get_user(db, ADMIN[0]) == before


def test_enabling_oneself_is_no_change_and_allowed(app: Flask, db: Database) -> None:
    assert accounts.set_account_active(db, ADMIN[0], True, actor="t", me=ADMIN[0]).active


def test_the_last_active_admin_stays_without_a_signed_in_user(app: Flask, db: Database) -> None:
    """me=None (the CLI): the store's last-admin rule still holds, inside the same transaction."""
    for change in (lambda: accounts.set_account_role(db, ADMIN[0], "manager", actor="cli"),
                   lambda: accounts.set_account_active(db, ADMIN[0], False, actor="cli"),
                   lambda: accounts.remove_account(db, ADMIN[0], actor="cli")):
        with pytest.raises(LastAdmin):
            change()
    admin = get_user(db, ADMIN[0])
    assert admin is not None and admin.role == Role.ADMIN and admin.active


def test_a_role_is_one_of_the_vocabulary(app: Flask, db: Database) -> None:
    with pytest.raises(WebError, match="role must be one of admin, manager"):
        accounts.set_account_role(db, MANAGER[0], "boss", actor="t", me=ADMIN[0])
    assert accounts.set_account_role(db, MANAGER[0], "admin", actor="t", me=ADMIN[0]).role == Role.ADMIN


def test_deleting_needs_the_typed_username(app: Flask, db: Database) -> None:
    with pytest.raises(WebError, match="exactly"):
        accounts.remove_account(db, MANAGER[0], actor="t", me=ADMIN[0], typed="bo")
    accounts.remove_account(db, MANAGER[0], actor="t", me=ADMIN[0], typed=f" {MANAGER[0]} ")
    assert [u.username for u in list_users(db)] == [ADMIN[0]]


def test_admin_routes_sit_in_one_blueprint_per_concern(app: Flask) -> None:
    concerns = {"enrolment", "people", "corrections", "privacy", "users", "status", "doors"}
    seen = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/admin/"):
            parent, concern, _view = rule.endpoint.split(".")
            assert parent == "admin" and concern in concerns, rule.endpoint
            seen.add(concern)
        else:
            assert not rule.endpoint.startswith("admin."), rule.rule
    assert seen == concerns


def test_forms_offer_the_vocabulary(admin_client: tuple[FlaskClient, str], db: Database) -> None:
    from kiosk.store import add_person

    client, _ = admin_client
    person = add_person(db, "E1", "Erin Example")
    html = client.get(f"/people/{person.id}").get_data(as_text=True)
    for kind in values(LeaveKind):
        assert f'<option value="{kind}">{kind}</option>' in html
    for kind in PERSON_EVENT_KINDS:
        assert f'<option value="{kind}">check-{kind}</option>' in html
    html = client.get("/admin/users").get_data(as_text=True)
    assert '<option value="manager" selected>manager (reports only)</option>' in html
    assert all(f'<option value="{role}"' in html for role in Role)


def test_the_excel_bom_goes_before_a_streamed_body() -> None:
    closed = []

    class Chunks:
        def __iter__(self):
            yield "name\n"
            yield "Zoë\n"

        def close(self) -> None:
            closed.append(True)

    response = Response(Chunks(), content_type="text/csv; charset=utf-8")
    assert response.is_streamed
    add_excel_bom(response)
    assert b"".join(response.response) == UTF8_BOM + "name\nZoë\n".encode()
    assert closed == [True]
