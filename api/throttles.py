"""Rate limits per API key (settings ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]``:
``api_read`` for GET, ``api_write`` for the other methods)."""

from rest_framework.throttling import SimpleRateThrottle

from api.models import ApiKey


class _KeyThrottle(SimpleRateThrottle):
    methods: tuple = ()

    def get_cache_key(self, request, view):
        if request.method not in self.methods or not isinstance(request.auth, ApiKey):
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.auth.pk}


class KeyReadThrottle(_KeyThrottle):
    scope = "api_read"
    methods = ("GET", "HEAD", "OPTIONS")


class KeyWriteThrottle(_KeyThrottle):
    scope = "api_write"
    methods = ("POST", "PATCH", "PUT", "DELETE")
