from django.contrib.admin.apps import AdminConfig


class DacAdminConfig(AdminConfig):
    default_site = "dac.admin.OperatorAdminSite"
