"""Forms whose answer shows a secret once (an API token, a consumer's API key).

A reload of that answer re-sends the form: it must not make a second secret and show it.
"""

import secrets

# Each rendered form that makes a secret carries a one-time nonce, kept in the session. A POST
# whose nonce was already used is a browser reload (or back + resubmit) of the page that showed
# the secret: it must not silently make a second one and show it.
_FORM_NONCES = "console_form_nonces"
_MAX_FORM_NONCES = 20  # forms open at once in one session (several tabs)


def issue_form_nonce(request) -> str:
    nonce = secrets.token_urlsafe(16)
    kept = request.session.get(_FORM_NONCES, [])[-(_MAX_FORM_NONCES - 1) :]
    request.session[_FORM_NONCES] = [*kept, nonce]
    return nonce


def consume_form_nonce(request, nonce: str) -> bool:
    nonces = request.session.get(_FORM_NONCES, [])
    if not nonce or nonce not in nonces:
        return False
    nonces.remove(nonce)
    request.session[_FORM_NONCES] = nonces
    return True
