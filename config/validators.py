"""Validators for names shared by every resource."""

import re

from django.core.exceptions import ValidationError

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
DNS_LABEL_MESSAGE = (
    "must be a DNS label: at most 63 lowercase letters, digits and '-', "
    "starting and ending with a letter or digit"
)


def validate_dns_label(value: str) -> None:
    if not isinstance(value, str) or not DNS_LABEL.match(value):
        raise ValidationError(DNS_LABEL_MESSAGE, code="invalid_name")
