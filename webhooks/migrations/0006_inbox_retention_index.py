from django.db import migrations, models


class AddIndexConcurrentlyOnPostgres(migrations.AddIndex):
    """CREATE INDEX CONCURRENTLY on PostgreSQL: an inbox of millions of rows keeps taking webhooks while the index is built
    (a plain CREATE INDEX blocks every INSERT until it is done). Other databases (the demo's SQLite) add it plainly."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        model = to_state.apps.get_model(app_label, self.model_name)
        if not self.allow_migrate_model(schema_editor.connection.alias, model):
            return
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.add_index(model, self.index, concurrently=True)
        else:
            schema_editor.add_index(model, self.index)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        model = from_state.apps.get_model(app_label, self.model_name)
        if not self.allow_migrate_model(schema_editor.connection.alias, model):
            return
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.remove_index(model, self.index, concurrently=True)
        else:
            schema_editor.remove_index(model, self.index)


class Migration(migrations.Migration):
    atomic = False  # CONCURRENTLY cannot run inside a transaction

    dependencies = [
        ('webhooks', '0005_inbox_without_setting_foreign_key'),
    ]

    operations = [
        AddIndexConcurrentlyOnPostgres(
            model_name='webhookevent',
            index=models.Index(condition=models.Q(('status__in', ['processed', 'ignored'])), fields=['processed_at'], name='webhook_event_done'),
        ),
    ]
