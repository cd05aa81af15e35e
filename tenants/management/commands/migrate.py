"""`migrate` runs as the owner role by default, then grants the runtime role its rights."""

from django.conf import settings
from django.core.management.commands.migrate import Command as MigrateCommand
from django.db import connections

from dac.db.grants import apply_runtime_grants


class Command(MigrateCommand):
    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.set_defaults(database="owner")

    def handle(self, *args, **options):
        super().handle(*args, **options)
        runtime_role = settings.DATABASES["default"]["USER"]
        with connections[options["database"]].cursor() as cursor:
            apply_runtime_grants(cursor, runtime_role)
