"""What every settings section shares (unknown keys are errors) and the error a bad config raises."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ConfigError(Exception):
    """A user-fixable problem with the configuration; str() is the message to show."""


class Section(BaseModel):
    """A settings section: unknown keys are errors, and assignments are validated too."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
