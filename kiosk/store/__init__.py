"""The kiosk database: the one import surface of the store for the rest of the package.

Every function takes the Database (or, for a change of several steps that commits once or not at
all, the Transaction of ``with db.transaction() as tx:``) first. Nothing outside kiosk.store
imports SQLAlchemy or the store's submodules (ruff TID251). Areas: people, templates, events,
corrections, leave, captures, audit log, retention, erasure, export, accounts, off-site copies,
report reads, a door's cache of the central (door_cache), a central server's doors, event intake
and gallery feed, a joining kiosk's import and renumbering; db (sessions, transactions, the engine
seam), opening and migrate (databases and schema), sqlite and postgres (each engine's specifics).
"""

from kiosk.identity import clean_employee_id, clean_name
from kiosk.store._base import EventInfo, PersonInfo
from kiosk.store.accounts import (
    UserInfo,
    add_user,
    clean_sites,
    count_admins,
    end_session,
    get_user,
    get_user_by_id,
    list_users,
    remove_user,
    session_user,
    set_user_active,
    set_user_password,
    set_user_role,
    set_user_sites,
    start_session,
)
from kiosk.store.auditlog import AuditInfo, audit, list_audit, search_audit
from kiosk.store.captures import (
    CaptureBusy,
    CaptureInfo,
    CaptureNotFound,
    capture_progress,
    finish_capture,
    get_capture,
    latest_captures,
    request_capture,
    take_capture,
)
from kiosk.store.corrections import EventNotFound, add_correction, remove_event
from kiosk.store.db import Database, Transaction
from kiosk.store.door_cache import (
    CachedPerson,
    GalleryApplied,
    SyncState,
    apply_gallery,
    event_backlog,
    events_after,
    read_sync_state,
    sync_state_path,
    write_sync_state,
)
from kiosk.store.doors import (
    ENROL_CODE_TTL,
    BadEnrolCode,
    DoorError,
    DoorInfo,
    DoorNotFound,
    DoorRevoked,
    DuplicateDoor,
    NewDoorCode,
    UnknownDoorToken,
    add_door,
    authenticate_door,
    device_slug,
    enrol_door,
    get_door,
    list_doors,
    new_enrol_code,
    note_gallery_pull,
    revoke_door,
)
from kiosk.store.erasure import EraseResult, FinishedErasure, erase_person, finish_pending_erasures
from kiosk.store.events import (
    events_between,
    last_event_for,
    latest_events,
    local_day_bounds,
    record_event,
)
from kiosk.store.export import export_person
from kiosk.store.gallery_feed import GalleryChanges, GalleryPerson, changes_since, gallery_version
from kiosk.store.importing import (
    ImportAudit,
    ImportLeave,
    ImportPerson,
    ImportResult,
    InvalidImport,
    all_audit,
    import_standalone,
    standalone_templates,
)
from kiosk.store.ingest import (
    DoorEvent,
    IngestResult,
    InvalidDoorEvent,
    Pairing,
    SeqConflict,
    ingest_events,
)
from kiosk.store.leave import (
    LeaveInfo,
    LeaveNotFound,
    NewLeave,
    add_leave,
    add_leave_batch,
    leave_between,
    leave_by_person_day,
    remove_leave,
)
from kiosk.store.migrate import (
    UpgradeResult,
    current_revision,
    describe_location,
    head_revision,
    upgrade,
    upgrade_from_settings,
)
from kiosk.store.offsite import (
    OffsiteCopy,
    daily_copies,
    record_copy,
    write_daily_copy,
    write_offsite_copy,
)
from kiosk.store.opening import open_database, open_from_settings
from kiosk.store.payroll_sql import (
    OffsetSpan,
    PayrollDoor,
    PayrollPerson,
    PayrollRequest,
    PayrollRules,
    offset_spans,
    payroll_days,
)
from kiosk.store.people import (
    add_person,
    deactivate,
    get_person,
    get_person_by_employee_id,
    list_people,
    people_by_id,
    rename_person,
    search_people,
    set_active,
    set_consent,
)
from kiosk.store.renumber import Renumbered, RenumberRefused, renumber_people, renumber_record
from kiosk.store.reporting import (
    DayFigures,
    EventMark,
    bulk_add_events,
    bulk_add_people,
    day_figures,
    home_sites,
    iter_event_marks,
    read_snapshot,
    whole_or_store_error,
)
from kiosk.store.retention import PurgeResult, purge_expired
from kiosk.store.sqlite import backup_database
from kiosk.store.templates import (
    TemplateInfo,
    add_enrolment_image,
    add_templates,
    all_templates,
    enrolment_images,
    gallery_signature,
    list_templates,
    templates_not_made_by,
)

__all__ = [
    # database, schema, transactions
    "Database", "Transaction", "UpgradeResult", "backup_database", "current_revision", "describe_location",
    "head_revision",
    "open_database", "open_from_settings", "upgrade", "upgrade_from_settings",
    # people
    "PersonInfo", "add_person", "clean_employee_id", "clean_name", "deactivate", "get_person",
    "get_person_by_employee_id", "list_people", "people_by_id", "rename_person", "search_people",
    "set_active", "set_consent",
    # erasure and export
    "EraseResult", "FinishedErasure", "erase_person", "export_person", "finish_pending_erasures",
    # templates and enrolment photos
    "TemplateInfo", "add_enrolment_image", "add_templates", "all_templates", "enrolment_images",
    "gallery_signature", "list_templates", "templates_not_made_by",
    # attendance events and corrections
    "EventInfo", "EventNotFound", "add_correction", "events_between", "last_event_for", "latest_events",
    "local_day_bounds", "record_event", "remove_event",
    # leave
    "LeaveInfo", "LeaveNotFound", "NewLeave", "add_leave", "add_leave_batch", "leave_between",
    "leave_by_person_day", "remove_leave",
    # capture requests
    "CaptureBusy", "CaptureInfo", "CaptureNotFound", "capture_progress", "finish_capture", "get_capture",
    "latest_captures", "request_capture", "take_capture",
    # audit log and retention
    "AuditInfo", "PurgeResult", "audit", "list_audit", "purge_expired", "search_audit",
    # web accounts and sessions
    "UserInfo", "add_user", "count_admins", "end_session", "get_user", "get_user_by_id", "list_users",
    "remove_user", "session_user", "set_user_active", "set_user_password", "set_user_role",
    "set_user_sites", "clean_sites", "start_session",
    # off-site copies
    "OffsiteCopy", "daily_copies", "record_copy", "write_daily_copy", "write_offsite_copy",
    # a door's cache of the central (role: door)
    "CachedPerson", "GalleryApplied", "SyncState", "apply_gallery", "event_backlog", "events_after",
    "read_sync_state", "sync_state_path", "write_sync_state",
    # report reads
    "DayFigures", "EventMark", "bulk_add_events", "bulk_add_people", "day_figures", "home_sites",
    "iter_event_marks", "read_snapshot", "whole_or_store_error",
    # the range payroll CSV made in SQL (PostgreSQL; kiosk.reports.payroll_fast)
    "OffsetSpan", "PayrollDoor", "PayrollPerson", "PayrollRequest", "PayrollRules", "offset_spans",
    "payroll_days",
    # doors of a central server, their events and the gallery feed (docs/central.md)
    "ENROL_CODE_TTL", "BadEnrolCode", "DoorError", "DoorEvent", "DoorInfo", "DoorNotFound", "DoorRevoked",
    "DuplicateDoor", "GalleryChanges", "GalleryPerson", "IngestResult", "InvalidDoorEvent", "NewDoorCode",
    "SeqConflict", "UnknownDoorToken", "add_door", "authenticate_door", "changes_since", "device_slug",
    "enrol_door", "gallery_version", "ImportAudit", "ImportLeave", "ImportPerson", "ImportResult",
    "InvalidImport", "import_standalone", "all_audit", "standalone_templates", "get_door", "ingest_events", "Pairing", "list_doors", "new_enrol_code",
    "note_gallery_pull", "revoke_door",
    # a joining kiosk's people renumbered to the central's ids
    "RenumberRefused", "Renumbered", "renumber_people", "renumber_record",
]
