"""Static files storage: hashed and compressed once collected, served as is before.

After ``manage.py collectstatic`` (production) the pages link the hashed,
compressed copies that whitenoise serves from STATIC_ROOT with far-future
cache headers. Before it (a site started by hand with DEBUG off and nothing
collected) there is no manifest: rather than fail every page with "Missing
staticfiles manifest entry", the pages link the plain names, which whitenoise
serves from the apps and ``static/`` (settings.WHITENOISE_USE_FINDERS).
"""

from whitenoise.storage import CompressedManifestStaticFilesStorage


class StaticFilesStorage(CompressedManifestStaticFilesStorage):
    def stored_name(self, name):
        if not self.hashed_files:
            return name
        return super().stored_name(name)
