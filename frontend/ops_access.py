"""Who may use the operators' pages (``/ops/``): platform operators (``is_staff``) only.

Anonymous visitors go to sign-in. A signed-in user who is not an operator gets a 404 page, as
for another tenant's objects: the pages do not exist for them (and a forged POST changes
nothing, the same 404).
"""

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.urls import reverse

# The operators' navigation: (label, URL name).
NAVIGATION = [
    ("Tenants", "frontend:ops-tenants"),
    ("Plans", "frontend:ops-plans"),
    ("Clusters", "frontend:ops-clusters"),
    ("Platform health", "frontend:ops-health"),
    ("Revenue", "frontend:ops-revenue"),
]


def operator_required(view):
    @login_required
    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if not request.user.is_staff:
            raise Http404("no such page")
        return view(request, *args, **kwargs)

    return wrapped


def ops_context(section: str, **extra) -> dict:
    """What every operators' page's layout needs: its navigation, ``section`` marked."""
    nav = [
        {"label": label, "url": reverse(name), "current": name == section}
        for label, name in NAVIGATION
    ]
    return {"ops_nav": nav, **extra}
