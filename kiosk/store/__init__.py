"""The kiosk database: SQLAlchemy models, engine setup, migrations and the only queries.

Import from here; nothing outside kiosk.store imports SQLAlchemy.
"""

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
from kiosk.store.db import (
    Database,
    UpgradeResult,
    backup_database,
    current_revision,
    head_revision,
    open_database,
    open_from_settings,
    upgrade,
    upgrade_from_settings,
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
from kiosk.store.offsite import (
    OffsiteCopy,
    daily_copies,
    record_copy,
    write_daily_copy,
    write_offsite_copy,
)
from kiosk.store.repo import (
    AuditInfo,
    EraseResult,
    EventInfo,
    PersonInfo,
    PurgeResult,
    TemplateInfo,
    UserInfo,
    add_enrolment_image,
    add_person,
    add_templates,
    add_user,
    all_templates,
    audit,
    deactivate,
    enrolment_images,
    erase_person,
    events_between,
    export_person,
    gallery_signature,
    get_person,
    get_person_by_employee_id,
    get_user,
    last_event_for,
    list_audit,
    list_people,
    list_templates,
    list_users,
    local_day_bounds,
    people_by_id,
    purge_expired,
    record_event,
    rename_person,
    set_active,
    set_consent,
    templates_not_made_by,
)
from kiosk.store.reporting import (
    DayFigures,
    EventMark,
    bulk_add_events,
    bulk_add_people,
    day_figures,
    iter_event_marks,
    read_snapshot,
)

__all__ = [
    "AuditInfo", "Database", "EraseResult", "EventInfo", "PersonInfo", "PurgeResult",
    "TemplateInfo", "UpgradeResult", "UserInfo", "add_enrolment_image", "add_person",
    "add_templates", "add_user", "all_templates", "audit", "backup_database", "current_revision", "gallery_signature",
    "deactivate", "enrolment_images", "erase_person", "events_between", "export_person",
    "get_person", "get_person_by_employee_id", "get_user", "head_revision", "last_event_for",
    "list_audit", "list_people", "list_templates", "list_users", "local_day_bounds",
    "open_database", "open_from_settings", "people_by_id", "purge_expired", "record_event",
    "set_active",
    "set_consent", "templates_not_made_by", "upgrade", "upgrade_from_settings",
    "CaptureBusy", "CaptureInfo", "CaptureNotFound", "capture_progress", "finish_capture", "get_capture",
    "latest_captures", "request_capture", "take_capture", "EventNotFound", "add_correction", "remove_event",
    "rename_person", "LeaveInfo", "LeaveNotFound", "NewLeave", "add_leave", "add_leave_batch", "leave_between", "leave_by_person_day",
    "remove_leave", "OffsiteCopy", "daily_copies", "record_copy", "write_daily_copy", "write_offsite_copy",
    "DayFigures", "EventMark", "day_figures", "bulk_add_events", "bulk_add_people", "iter_event_marks", "read_snapshot",
]
