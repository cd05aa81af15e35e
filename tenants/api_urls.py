from django.urls import path

from tenants import apis

urlpatterns = [
    path("orgs/", apis.OrgListApi.as_view(), name="orgs-list"),
    path("members/", apis.MembershipListApi.as_view(), name="members-list"),
    path("members/<int:membership_id>/", apis.MembershipDetailApi.as_view(), name="members-detail"),
    path("tokens/", apis.ApiTokenListApi.as_view(), name="tokens-list"),
    path("tokens/<int:token_id>/revoke/", apis.ApiTokenRevokeApi.as_view(), name="tokens-revoke"),
]
