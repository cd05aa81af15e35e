"""Failed logins go to the system chain: email and client address, never the password.

Django sends `user_login_failed` with the credentials already cleansed (the password replaced
by stars); only the identifier is read here. The address is REMOTE_ADDR as the ASGI server
reports it (uvicorn rewrites it from X-Forwarded-For for the proxies it is told to trust).
"""

from __future__ import annotations

from django.contrib.auth.signals import user_login_failed
from django.dispatch import receiver

from audit.services import Actor, audit_record


def client_ip(request) -> str:
    if request is None:
        return ""
    return (request.META.get("REMOTE_ADDR") or "")[:45]


@receiver(user_login_failed, dispatch_uid="audit.login_failed")
def record_login_failed(sender, credentials: dict, request=None, **kwargs) -> None:
    email = str(credentials.get("username") or credentials.get("email") or "").strip().lower()[:254]
    ip = client_ip(request)
    audit_record(
        org_id=None,
        actor=Actor.system("anonymous"),
        event="auth.login_failed",
        target=f"email:{email}" if email else "",
        details={"email": email, "ip": ip},
    )
