from django.db import migrations


def seed(apps, schema_editor):
    from incidents.runbooks import ensure_defaults

    ensure_defaults(apps.get_model("incidents", "Runbook"))


class Migration(migrations.Migration):
    dependencies = [("incidents", "0001_alerts_incidents")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
