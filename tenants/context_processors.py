def current_org(request):
    return {
        "org_access": getattr(request, "org_access", None),
        "user_orgs": getattr(request, "orgs", []),
    }
