"""What a locked-out sign-in sees (django-axes calls ``locked_out``), console and admin alike.

The page says the same whether or not the username exists: the lockout is counted per
username and client address, for any username.
"""

from django.conf import settings
from django.shortcuts import render


def lockout_message() -> str:
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    return (
        f"Too many failed sign-in attempts for this username from your address. "
        f"Sign-in is blocked for {minutes} minutes after the last failed attempt; "
        "a platform operator can lift the block sooner."
    )


def locked_out(request, original_response=None, credentials=None):
    """429 with the sign-in page's look, and Retry-After in seconds."""
    response = render(
        request,
        "frontend/locked_out.html",
        {"message": lockout_message()},
        status=429,
    )
    response["Retry-After"] = str(int(settings.AXES_COOLOFF_TIME.total_seconds()))
    return response
