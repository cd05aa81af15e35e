from django.db import migrations

from dac.db.rls import enable_rls


class Migration(migrations.Migration):
    dependencies = [("threads", "0001_initial")]

    operations = [enable_rls("threads_thread"), enable_rls("threads_message")]
