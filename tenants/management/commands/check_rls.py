from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connections

from dac.db.rls import rls_problems


class Command(BaseCommand):
    help = "Fail if a tenant table lacks forced RLS or its policy, or the runtime role could bypass RLS."

    def handle(self, *args, **options):
        runtime_role = settings.DATABASES["default"]["USER"]
        with connections["default"].cursor() as cursor:
            problems = rls_problems(cursor, runtime_role)
            cursor.execute("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname='public' AND c.relkind='r' AND c.relforcerowsecurity")
            forced = cursor.fetchone()[0]
        if problems:
            for problem in problems:
                self.stderr.write(problem)
            raise CommandError(f"{len(problems)} row-level security problem(s).")
        self.stdout.write(f"RLS OK: {forced} tenant tables forced; runtime role {runtime_role} cannot bypass RLS.")
