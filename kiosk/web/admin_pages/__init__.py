"""The admin area (/admin/...): one parent blueprint "admin" that refuses anyone but a signed-in
admin, holding one blueprint per concern (endpoints "admin.<concern>.<view>"):

- enrolment: enrol or re-enrol from photos or at the kiosk camera, capture requests
- people: rename, (de)activate, consent, erasure, data export of one person
- corrections: attendance events by hand, leave (one person or a CSV import)
- privacy: privacy settings, retention purge, audit log, backup download
- users: web accounts
- status: the kiosk service's status
- doors: a central server's doors (role: central only)
"""

from __future__ import annotations

import logging

from flask import Blueprint, abort

from kiosk.web.admin_pages import corrections, doors, enrolment, people, privacy, status, users
from kiosk.web.context import current_user, is_admin

logger = logging.getLogger(__name__)

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.before_request
def _admins_only() -> None:
    """Second line of defence: every /admin/ route needs an admin, whatever its decorator."""
    user = current_user()
    if user is None:
        abort(401)
    if not is_admin(user):
        abort(403)


for _concern in (enrolment, people, corrections, privacy, users, status, doors):
    bp.register_blueprint(_concern.bp)
