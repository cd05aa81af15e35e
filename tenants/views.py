from __future__ import annotations

import secrets
from datetime import timedelta

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.contrib.auth import views as auth_views
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST

from audit.services import Actor
from dac.errors import ApplicationError, NotFound
from tenants import selectors, services
from tenants.decorators import org_admin_required, org_member_required
from tenants.forms import ApiTokenCreateForm, LoginForm, MemberAddForm, RoleForm, SignupForm
from tenants.middleware import SESSION_ORG_KEY
from tenants.models import Membership
from tenants.throttle import login_blocked, login_failed, login_succeeded


def home(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("tenants:org_create" if request.org_access is None else "threads:list")
    return render(request, "tenants/landing.html")


@org_member_required
def dashboard(request: HttpRequest) -> HttpResponse:
    return render(request, "tenants/dashboard.html")


@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user, org = services.user_signup(
                email=form.cleaned_data["email"], password=form.cleaned_data["password"], org_name=form.cleaned_data["org_name"]
            )
        except ApplicationError as exc:
            form.add_error(None, exc.message)
        else:
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            request.session[SESSION_ORG_KEY] = org.id
            messages.success(request, f"Welcome to DAC. {org.name} is ready.")
            return redirect("tenants:dashboard")
    return render(request, "tenants/signup.html", {"form": form}, status=400 if form.errors else 200)


class LoginView(auth_views.LoginView):
    """Django's login (it rotates the session key on success: no session fixation), throttled."""

    template_name = "tenants/login.html"
    authentication_form = LoginForm
    redirect_authenticated_user = True

    def post(self, request, *args, **kwargs):
        email, address = request.POST.get("username", ""), request.META.get("REMOTE_ADDR", "")
        if login_blocked(email=email, address=address):
            form = self.get_form()
            form.errors.clear()
            form.add_error(None, "Too many failed attempts. Wait 15 minutes, or reset your password with an admin.")
            response = self.render_to_response(self.get_context_data(form=form))
            response.status_code = 429
            response["Retry-After"] = str(settings.DAC_LOGIN_WINDOW_SECONDS)
            return response
        return super().post(request, *args, **kwargs)

    def form_invalid(self, form):
        login_failed(email=self.request.POST.get("username", ""), address=self.request.META.get("REMOTE_ADDR", ""))
        return super().form_invalid(form)

    def form_valid(self, form):
        login_succeeded(email=form.get_user().email)
        return super().form_valid(form)


@require_POST
@org_member_required
def org_switch(request: HttpRequest) -> HttpResponse:
    try:
        org_id = int(request.POST.get("org_id", ""))
    except ValueError:
        raise Http404("No such organization.") from None
    if org_id not in {org.org_id for org in request.orgs}:
        raise Http404("No such organization.")
    request.session[SESSION_ORG_KEY] = org_id
    next_url = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        next_url = "threads:list"  # never off-site
    return redirect(next_url)


@login_required
@require_http_methods(["GET", "POST"])
def org_create(request: HttpRequest) -> HttpResponse:
    """A signed-in user with no org (or wanting another) creates one and owns it."""
    error = None
    if request.method == "POST":
        try:
            org = services.org_create(name=request.POST.get("name", ""), owner=request.user)
        except ApplicationError as exc:
            error = exc.message
        else:
            request.session[SESSION_ORG_KEY] = org.id
            messages.success(request, f"{org.name} created.")
            return redirect("tenants:dashboard")
    return render(request, "tenants/org_create.html", {"error": error}, status=400 if error else 200)


def _members_context(request: HttpRequest, form: MemberAddForm | None = None) -> dict:
    return {
        "memberships": selectors.membership_list(),
        "form": form or MemberAddForm(),
        "role_form": RoleForm(),
        "can_manage": request.org_access.is_admin,
    }


@org_member_required
def members(request: HttpRequest) -> HttpResponse:
    return render(request, "tenants/members.html", _members_context(request))


@require_POST
@org_admin_required
def member_add(request: HttpRequest) -> HttpResponse:
    form = MemberAddForm(request.POST)
    if form.is_valid():
        email, role = form.cleaned_data["email"].lower(), form.cleaned_data["role"]
        try:
            membership = services.member_add_by_email(org_id=request.org_access.org_id, email=email, role=role,
                                                      password=form.cleaned_data["password"], actor=Actor.user(request.user))
        except ApplicationError as exc:
            form.add_error(None, exc.message)
        else:
            if membership.accepted_at is None:
                messages.success(request, f"{email} has an account already, so they are invited as {role}: "
                                          "the organization is theirs once they accept (they see the invitation when they sign in).")
            else:
                messages.success(request, f"{email} added as {role}.")
            return redirect("tenants:members")
    return render(request, "tenants/members.html", _members_context(request, form), status=400)


@require_POST
@login_required
def invitation_answer(request: HttpRequest, membership_id: int, answer: str) -> HttpResponse:
    """The invited user accepts (the org is theirs, and the one they act in) or declines."""
    if answer not in ("accept", "decline"):
        raise Http404("Answer accept or decline.")
    accept = answer == "accept"
    try:
        invitation = services.membership_invitation_answer(user=request.user, membership_id=membership_id, accept=accept)
    except NotFound:
        raise Http404("No such invitation.") from None
    if not accept:
        messages.success(request, f"Invitation to {invitation.org_name} declined.")
        return redirect("tenants:home")
    request.session[SESSION_ORG_KEY] = invitation.org_id
    messages.success(request, f"You are now in {invitation.org_name} as {invitation.role}.")
    return redirect("tenants:dashboard")


def _membership_or_404(membership_id: int) -> Membership:
    try:
        return selectors.membership_get(membership_id=membership_id)
    except Membership.DoesNotExist:
        raise Http404("No such member.") from None


@require_POST
@org_admin_required
def member_role(request: HttpRequest, membership_id: int) -> HttpResponse:
    membership = _membership_or_404(membership_id)
    form = RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a valid role.")
        return redirect("tenants:members")
    try:
        services.membership_role_change(
            membership=membership, role=form.cleaned_data["role"], actor=Actor.user(request.user), actor_role=request.org_access.role
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{membership.user.email} is now {membership.role}.")
    return redirect("tenants:members")


@require_POST
@org_admin_required
def member_remove(request: HttpRequest, membership_id: int) -> HttpResponse:
    membership = _membership_or_404(membership_id)
    try:
        services.membership_remove(membership=membership, actor=Actor.user(request.user), actor_role=request.org_access.role)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{membership.user.email} removed.")
    return redirect("tenants:members")


# The create form's ids already used in this session: a reload that sends the form again (the
# token page is rendered, not redirected to, so that the plaintext exists in that one response
# only) would otherwise create a second token.
_TOKEN_FORMS_SENT = "api_token_forms_sent"


@org_member_required
def api_tokens(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "tenants/api_tokens.html",
        {"tokens": selectors.api_token_list(), "form": ApiTokenCreateForm(), "can_manage": request.org_access.is_admin,
         "form_id": secrets.token_urlsafe(16)},
    )


@require_POST
@org_admin_required
def api_token_create(request: HttpRequest) -> HttpResponse:
    form = ApiTokenCreateForm(request.POST)
    form_id = request.POST.get("form_id", "")[:64]
    context = {"tokens": selectors.api_token_list(), "form": form, "can_manage": True, "form_id": form_id}
    if form_id and form_id in request.session.get(_TOKEN_FORMS_SENT, []):
        form.is_valid()  # bound and checked, so that an error can be added
        form.add_error(None, "This form was sent already (the page was reloaded?): its token was created and shown then, "
                             "once. To create another, fill in the form again.")
        context["form_id"] = secrets.token_urlsafe(16)
        return render(request, "tenants/api_tokens.html", context, status=409)
    if form.is_valid():
        days = form.cleaned_data["expires_in_days"]
        try:
            created = services.api_token_create(
                org_id=request.org_access.org_id,
                name=form.cleaned_data["name"],
                created_by=request.user,
                actor=Actor.user(request.user),
                expires_at=timezone.now() + timedelta(days=days) if days else None,
            )
        except ApplicationError as exc:
            form.add_error(None, exc.message)
        else:
            # Rendered, not redirected: the plaintext exists only in this one response.
            if form_id:
                request.session[_TOKEN_FORMS_SENT] = [*request.session.get(_TOKEN_FORMS_SENT, [])[-19:], form_id]
            context.update(new_token=created.plaintext, form=ApiTokenCreateForm(), form_id=secrets.token_urlsafe(16))
            response = render(request, "tenants/api_tokens.html", context)
            response["Cache-Control"] = "no-store"
            return response
    return render(request, "tenants/api_tokens.html", context, status=400)


@require_POST
@org_admin_required
def api_token_revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    token = selectors.api_token_list().filter(pk=token_id).first()
    if token is None:
        raise Http404("No such token.")
    services.api_token_revoke(token=token, actor=Actor.user(request.user))
    messages.success(request, f"Token {token.name} revoked.")
    return redirect(reverse("tenants:api_tokens"))
