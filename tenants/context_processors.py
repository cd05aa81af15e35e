from django.utils.functional import SimpleLazyObject

from tenants.selectors import user_invitations


def current_org(request):
    user = getattr(request, "user", None)
    signed_in = user is not None and user.is_authenticated
    return {
        "org_access": getattr(request, "org_access", None),
        "user_orgs": getattr(request, "orgs", []),
        # Looked up only by the pages that show them (base.html), not by partials.
        "invitations": SimpleLazyObject(lambda: user_invitations(user_id=user.pk) if signed_in else []),
    }
