"""A message belongs to its thread's org, and a forgotten memory to its message's org, held by
PostgreSQL itself: the admin (an operator's form) could save a message of one org in another
org's thread, which neither org could then see whole. Composite foreign keys on (id, org_id);
NOT VALID, so a database that already holds such a row migrates (new and changed rows are
checked; `ALTER TABLE … VALIDATE CONSTRAINT` checks the old ones once they are mended)."""

from django.db import migrations

FORWARD = """
ALTER TABLE threads_thread ADD CONSTRAINT threads_thread_id_org_unique UNIQUE (id, org_id);
ALTER TABLE threads_message ADD CONSTRAINT threads_message_thread_same_org
    FOREIGN KEY (thread_id, org_id) REFERENCES threads_thread (id, org_id) ON DELETE CASCADE NOT VALID;
ALTER TABLE threads_message ADD CONSTRAINT threads_message_id_org_unique UNIQUE (id, org_id);
ALTER TABLE threads_forgottenmemory ADD CONSTRAINT threads_forgottenmemory_message_same_org
    FOREIGN KEY (message_id, org_id) REFERENCES threads_message (id, org_id) ON DELETE CASCADE NOT VALID;
"""

BACKWARD = """
ALTER TABLE threads_forgottenmemory DROP CONSTRAINT threads_forgottenmemory_message_same_org;
ALTER TABLE threads_message DROP CONSTRAINT threads_message_id_org_unique;
ALTER TABLE threads_message DROP CONSTRAINT threads_message_thread_same_org;
ALTER TABLE threads_thread DROP CONSTRAINT threads_thread_id_org_unique;
"""


class Migration(migrations.Migration):

    dependencies = [("threads", "0003_memory")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
