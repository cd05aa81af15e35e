from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "tenants"

    def ready(self):
        from tenants import schema  # noqa: F401  (registers the OpenAPI auth extensions)
