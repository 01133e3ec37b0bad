from django.db import migrations, models


class Migration(migrations.Migration):
    """Unsafe: NOT NULL without a default. Passes on an empty table, fails on real rows."""

    dependencies = [("shop", "0002_order_note")]
    operations = [migrations.AddField("order", "region", models.CharField(max_length=20))]
