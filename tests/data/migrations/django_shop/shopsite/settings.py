"""The database comes from DATABASE_URL, which releasegate sets for every run (the live
database, or a scratch copy when it rehearses)."""

import os
from urllib.parse import unquote, urlsplit

SECRET_KEY = "test-only"
INSTALLED_APPS = ["shop"]
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

_url = urlsplit(os.environ.get("DATABASE_URL", "postgresql://localhost/none"))
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(_url.path.lstrip("/")),
        "USER": unquote(_url.username or ""),
        "PASSWORD": unquote(_url.password or ""),
        "HOST": _url.hostname or "",
        "PORT": str(_url.port or ""),
    }
}
