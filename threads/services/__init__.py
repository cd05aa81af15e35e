"""Thread services: thread CRUD and the send pipeline."""

from threads.services.handle import Caller, SendOptions
from threads.services.send import message_send
from threads.services.threads import thread_create, thread_delete, thread_update

__all__ = ["Caller", "SendOptions", "message_send", "thread_create", "thread_delete", "thread_update"]
