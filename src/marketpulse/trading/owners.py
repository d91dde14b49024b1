"""Who owns a request's rows. Until accounts exist every request is the default owner.

Views depend on `current_owner`, so the accounts capability replaces one function (and tests override it
through `app.dependency_overrides`) without touching any query: every query already filters by the owner.
"""

from __future__ import annotations

DEFAULT_OWNER = "default"


def current_owner() -> str:
    # TODO(accounts): resolve the authenticated user from the request once sign-in exists.
    return DEFAULT_OWNER
