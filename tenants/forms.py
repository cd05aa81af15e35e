from django import forms
from django.contrib.auth.forms import AuthenticationForm

from tenants.models import Role


class SignupForm(forms.Form):
    email = forms.EmailField(label="Work email", max_length=254)
    password = forms.CharField(label="Password", widget=forms.PasswordInput, min_length=8, max_length=128)
    org_name = forms.CharField(label="Organization name", max_length=120, required=False)


class LoginForm(AuthenticationForm):
    username = forms.EmailField(label="Email", max_length=254)


class MemberAddForm(forms.Form):
    email = forms.EmailField(label="Email", max_length=254)
    role = forms.ChoiceField(label="Role", choices=Role.choices, initial=Role.MEMBER)
    password = forms.CharField(
        label="Password (only to create a new user)", widget=forms.PasswordInput, required=False, max_length=128
    )


class RoleForm(forms.Form):
    role = forms.ChoiceField(label="Role", choices=Role.choices)


class ApiTokenCreateForm(forms.Form):
    name = forms.CharField(label="Token name", max_length=100)
    expires_in_days = forms.IntegerField(label="Expires in (days, blank = never)", min_value=1, max_value=3650, required=False)
