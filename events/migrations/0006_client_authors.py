"""Client-id claims, filled from each existing log: every client id goes to the actor of the
first event that wrote under it (events.authors)."""

from typing import Any

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def _fill(apps: Any, schema_editor: Any) -> None:
    """Claims from the packed segments and rows of every document's log, in seq order."""
    # Pure helpers only (a segment's codec, an update's client ids): no live models.
    from collab.sync.protocol import ProtocolError
    from collab.sync.writers import update_clients
    from events.packing import unpack

    Document = apps.get_model("collab", "Document")
    Event = apps.get_model("events", "Event")
    EventSegment = apps.get_model("events", "EventSegment")
    ClientAuthor = apps.get_model("events", "ClientAuthor")
    for document_id in Document.objects.values_list("id", flat=True).iterator():
        owners: dict[int, Any] = {}
        after = 0

        def take(actor: Any, update: bytes) -> None:
            try:
                clients = update_clients(update)
            except ProtocolError:
                return
            for client in clients:
                owners.setdefault(client, actor)

        segments = EventSegment.objects.filter(document_id=document_id).order_by("first_seq")
        for first_seq, last_seq, data in segments.values_list("first_seq", "last_seq", "data"):
            for event in unpack(bytes(data), first_seq):
                take(event.actor_id, event.update)
            after = last_seq
        rows = Event.objects.filter(document_id=document_id, seq__gt=after).order_by("seq")
        for actor, update in rows.values_list("actor_id", "update").iterator(chunk_size=2000):
            take(actor, bytes(update))
        ClientAuthor.objects.bulk_create(
            [
                ClientAuthor(document_id=document_id, client_id=client, actor_id=actor)
                for client, actor in owners.items()
            ],
            batch_size=1000,
            ignore_conflicts=True,
        )


class Migration(migrations.Migration):

    dependencies = [
        ('collab', '0003_document_head'),
        ('events', '0005_packed_segments_checkpoints'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='ClientAuthor',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('client_id', models.PositiveBigIntegerField()),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('actor', models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('document', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='collab.document')),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('document', 'client_id'), name='client_author_unique')],
            },
        ),
        migrations.RunPython(_fill, migrations.RunPython.noop),
    ]
