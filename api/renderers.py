"""A response written from JSON text already made (by PostgreSQL: the run's
documents page, billruns.selectors.run_documents_page_json) without parsing
it and rendering it again: the text is byte for byte what DRF's JSONRenderer
writes of the parsed value (tests/api/test_api_documents_page.py)."""

import json
from dataclasses import dataclass

from rest_framework.renderers import JSONRenderer


@dataclass(frozen=True)
class RawJSON:
    """A response's body as JSON text, compact (``,`` and ``:``) and with
    non-ASCII characters as they are, as JSONRenderer writes with DRF's
    default COMPACT_JSON and UNICODE_JSON; U+2028 and U+2029 unescaped."""

    text: str


class RawJSONRenderer(JSONRenderer):
    """JSONRenderer, but a RawJSON body is written as its text (U+2028 and
    U+2029 escaped, as JSONRenderer escapes them). Whenever JSONRenderer
    would write anything else (an ``indent`` asked for in ``Accept``, or
    settings that are not compact or escape non-ASCII), the text is parsed
    and rendered as JSONRenderer renders it."""

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if not isinstance(data, RawJSON):
            return super().render(data, accepted_media_type, renderer_context)
        indent = self.get_indent(accepted_media_type, renderer_context or {})
        if indent is not None or not self.compact or self.ensure_ascii:
            return super().render(json.loads(data.text), accepted_media_type, renderer_context)
        return data.text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029").encode()
