"""Settings for the test suite: production settings with test secrets, DEBUG off."""

import os

os.environ["DAC_SKIP_DOTENV"] = "1"
os.environ.setdefault("SECRET_KEY", "test-secret-key-for-the-dac-test-suite-only-0123456789")
# Two master keys so rotation is exercised; never used outside tests.
os.environ.setdefault(
    "DAC_ENCRYPTION_KEYS",
    "dGVzdC1tYXN0ZXIta2V5LW9uZS1mb3ItZGFjLXRlc3Q=,dGVzdC1tYXN0ZXIta2V5LXR3by1mb3ItZGFjLXRlc3Q=",
)
os.environ.setdefault("DAC_HTTPS", "false")
# No background connection filling: the test database is dropped at the end of the run.
os.environ.setdefault("DB_POOL_MIN_SIZE", "0")
# Metric rows are only stored by the metrics tests, which switch it on themselves.
os.environ.setdefault("DAC_METRICS_STORE", "false")
os.environ.setdefault("DAC_DEMO_STREAM_DELAY_MS", "0")
os.environ.setdefault("QDRANT_PATH", "")
# Index in the request, not in a background thread, so tests see the result at once.
os.environ.setdefault("DAC_MEMORY_INDEX_MODE", "inline")
# A test server stopped with an answer still running waits for it this long, not 20 s.
os.environ.setdefault("DAC_SHUTDOWN_GRACE_SECONDS", "5")

from dac.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast tests only
# Cache keys of one run never meet another run's (the database ids repeat between runs).
CACHES["default"]["KEY_PREFIX"] = f"test{os.getpid()}"  # noqa: F405
