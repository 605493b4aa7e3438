"""Query parameters the billing API shares."""

from datetime import UTC, datetime

from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from config.errors import FieldError


def parse_moment(text: str, path: str, errors: list) -> datetime | None:
    """An ISO 8601 date (midnight UTC) or date-time (UTC when it names no zone)."""
    try:
        moment = parse_datetime(text)
        if moment is None:
            day = parse_date(text)
            moment = datetime.combine(day, datetime.min.time()) if day else None
    except ValueError:
        moment = None
    if moment is None:
        errors.append(FieldError(path, f"{text!r} is not a date (2026-12-01) or a date-time "
                                       "(2026-12-01T10:00:00Z)"))  # fmt: skip
        return None
    return moment.replace(tzinfo=UTC) if timezone.is_naive(moment) else moment.astimezone(UTC)
