from django.contrib.auth import views as auth_views
from django.urls import path

from tenants import demo, views

app_name = "tenants"

urlpatterns = [
    path("", views.home, name="home"),
    path("dashboard/", views.dashboard, name="dashboard"),
    path("signup/", views.signup, name="signup"),
    path("demo", demo.demo, name="demo"),
    path("demo/", demo.demo),
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("orgs/new/", views.org_create, name="org_create"),
    path("orgs/switch/", views.org_switch, name="org_switch"),
    path("members/", views.members, name="members"),
    path("members/add/", demo.not_in_sandbox(views.member_add, back="tenants:members"), name="member_add"),
    path("members/<int:membership_id>/role/", views.member_role, name="member_role"),
    path("members/<int:membership_id>/remove/", views.member_remove, name="member_remove"),
    path("invitations/<int:membership_id>/<str:answer>/", views.invitation_answer, name="invitation_answer"),
    path("tokens/", views.api_tokens, name="api_tokens"),
    path("tokens/create/", demo.not_in_sandbox(views.api_token_create, back="tenants:api_tokens"), name="api_token_create"),
    path("tokens/<int:token_id>/revoke/", views.api_token_revoke, name="api_token_revoke"),
]
