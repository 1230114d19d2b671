"""Re-encrypt every stored provider secret with the newest key.

Key rotation: put the new key first in FIELD_ENCRYPTION_KEYS, keeping the old ones after it
("NEW,OLD"), deploy, run this command, then remove the old key.
"""

from django.core.management.base import BaseCommand

from providers.services import rotate_encryption


class Command(BaseCommand):
    help = __doc__

    def handle(self, *args, **options):
        count = rotate_encryption()
        self.stdout.write(f"Re-encrypted the secrets of {count} provider setting(s) with the newest key.")
