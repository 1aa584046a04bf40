"""`global.history`: where automatic gap filling sends what the exporter missed, and how."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field, model_validator

from exporter.settings import Duration, HttpUrl, LabelName, StrictModel

DEFAULT_MAX_AGE = 7200.0
"""Two hours: the out-of-order window docs/history.md asks receivers for."""


def _not_empty(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


NonEmpty = Annotated[str, AfterValidator(_not_empty)]


class BasicAuth(StrictModel):
    username: NonEmpty
    password_file: NonEmpty


class HistorySettings(StrictModel):
    remote_write_url: HttpUrl
    labels: dict[LabelName, str] = Field(default_factory=dict)
    """What the scrape adds (`job`, `instance`), so the history joins the scraped series."""
    max_age: Duration = DEFAULT_MAX_AGE
    bearer_token_file: NonEmpty | None = None
    basic_auth: BasicAuth | None = None

    @model_validator(mode="after")
    def _one_credential(self) -> HistorySettings:
        if self.bearer_token_file and self.basic_auth:
            raise ValueError("set bearer_token_file or basic_auth, not both")
        return self
