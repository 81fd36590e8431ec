import uuid

import pytest


@pytest.fixture(autouse=True)
def fresh_cache(settings):
    """Each test its own cache (the throttle's counters, used TOTP codes): Redis
    under a prefix of its own when REDIS_URL is set, as the site runs, else memory."""
    if settings.REDIS_URL:
        settings.CACHES = {
            "default": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": settings.REDIS_URL,
                "KEY_PREFIX": f"test-{uuid.uuid4().hex}",
            }
        }
    else:
        settings.CACHES = {
            "default": {
                "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                "LOCATION": f"test-{uuid.uuid4().hex}",
            }
        }

