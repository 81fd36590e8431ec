from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from accounts.services import demo_world_seed
from conversations.demo import demo_conversations_seed, demo_sharing_seed


class Command(BaseCommand):
    help = (
        "Create the demo teams and users, a team preset and a conversation shared with "
        "the team (idempotent; password from DEMO_PASSWORD); with --conversations N, "
        "also add N demo conversations to team Acme."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--conversations",
            type=int,
            default=0,
            metavar="N",
            help="Add N demo conversations of a few turns each to team Acme.",
        )

    def handle(self, *args, **options):
        count = options["conversations"]
        if count < 0:
            raise CommandError("--conversations takes a number of 0 or more.")
        people = demo_world_seed(password=settings.DEMO_PASSWORD)
        demo_sharing_seed(people=people)
        names = ", ".join(sorted(people))
        self.stdout.write(self.style.SUCCESS(f"Demo users ready: {names}"))
        self.stdout.write("Acme has a preset and a conversation shared with the team.")
        if count:
            added = demo_conversations_seed(count=count)
            self.stdout.write(self.style.SUCCESS(f"Added {added:,} demo conversations to Acme."))
