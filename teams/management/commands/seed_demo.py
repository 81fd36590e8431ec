from django.conf import settings
from django.core.management.base import BaseCommand

from accounts.services import demo_world_seed
from conversations.demo import demo_sharing_seed


class Command(BaseCommand):
    help = (
        "Create the demo teams and users, a team preset and a conversation shared "
        "with the team (idempotent). Password from DEMO_PASSWORD."
    )

    def handle(self, *args, **options):
        people = demo_world_seed(password=settings.DEMO_PASSWORD)
        demo_sharing_seed(people=people)
        names = ", ".join(sorted(people))
        self.stdout.write(self.style.SUCCESS(f"Demo users ready: {names}"))
        self.stdout.write("Acme has a preset and a conversation shared with the team.")
