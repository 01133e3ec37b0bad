from django.db import migrations, models


class Migration(migrations.Migration):
    """Backward compatible: a new nullable column (seed 003)."""

    dependencies = [("shop", "0001_initial")]
    operations = [migrations.AddField("order", "note", models.TextField(null=True))]
