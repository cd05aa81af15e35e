from django.core.management.base import BaseCommand

from providers.vault import generate_master_key


class Command(BaseCommand):
    help = "Print a new master key for DAC_ENCRYPTION_KEYS (put it first, then run rotate_keys)."

    def handle(self, *args, **options):
        self.stdout.write(generate_master_key())
