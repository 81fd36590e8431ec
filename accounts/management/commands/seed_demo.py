from django.conf import settings
from django.core.management.base import BaseCommand

from accounts.services import demo_world_seed


class Command(BaseCommand):
    help = "Create the demo teams and users (idempotent). Password from DEMO_PASSWORD."

    def handle(self, *args, **options):
        people = demo_world_seed(password=settings.DEMO_PASSWORD)
        names = ", ".join(sorted(people))
        self.stdout.write(self.style.SUCCESS(f"Demo users ready: {names}"))
