"""Static files in production: hashed names, compressed, served by whitenoise."""

from whitenoise.storage import CompressedManifestStaticFilesStorage


class ModuleManifestStaticFilesStorage(CompressedManifestStaticFilesStorage):
    """Also rewrites the chat's ES module imports (`import … from "./socket.js"`) to
    the hashed names, so a hashed `main.<hash>.js` never loads a sibling of another
    deploy (Django leaves this off by default)."""

    support_js_module_import_aggregation = True
