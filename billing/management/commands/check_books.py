"""`manage.py check_books`: the books' invariants (SPEC §11) on this database. Exit 0 when sound; exit 1 with one line
per violation (invariant, entity, invoice or charge, what is wrong, by how much) — usable as a monitoring probe."""

from django.core.management.base import BaseCommand

from billing.ledger import check_books


class Command(BaseCommand):
    help = __doc__

    def handle(self, *args, **options):
        violations = check_books()
        if not violations:
            self.stdout.write("The books are sound: every invariant of SPEC §11 holds.")
            return
        for violation in violations:
            self.stdout.write(str(violation))
        self.stderr.write(f"{len(violations)} violation(s) of the books' invariants.")
        raise SystemExit(1)
