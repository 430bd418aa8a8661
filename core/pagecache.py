"""Pages served again while nothing they show has changed.

A page's body (its title, breadcrumbs and content: everything but the
header, which is the signed-in user's, and the messages, which are the
request's) is rendered once and kept in the ``pages`` cache under a key
made of the change stamp (core.stamps: it moves with every committed
change to the billing tables), the path and query, the user's
permissions, the language, the time zone and the day. The stamp is read
first, the page's rows after, so a change that commits in between makes the
page newer than its key, never older. The whole page around the body
(the header: the user's name, notices and admin link) is kept too, per
user, and served as it is, unless the request has messages to show: then
the body is put in the page again and the messages rendered.

What must differ on every serve is rendered as a placeholder and filled in
each time: the form's CSRF token, and the request keys of forms that must
not be submitted twice (``placeholder``). Where changes are not stamped
(SQLite) nothing is cached and every request renders the page.
"""

import hashlib
import secrets
import uuid

from django.contrib import messages
from django.core.cache import caches
from django.http import HttpResponse
from django.middleware.csrf import get_token
from django.template.loader import render_to_string
from django.utils import timezone, translation

from core import stamps

CACHE = "pages"
PAGE_TEMPLATE = "cached_page.html"
# Random per process: no text in the billing data can be taken for one.
_SECRET = secrets.token_hex(12)
CSRF_PLACEHOLDER = f"csrf-{_SECRET}"


def placeholder(name):
    """What a page renders in place of a fresh UUID, filled in on every serve."""
    return f"uuid-{name}-{_SECRET}"


def permissions_digest(user):
    if user.is_superuser:
        return "superuser"
    names = sorted(user.get_all_permissions())
    return hashlib.sha256("\n".join(names).encode()).hexdigest()[:16]


def page_key(request, name, *parts):
    """The key of ``request``'s page ``name`` (None: do not cache)."""
    stamp = stamps.for_request(request)
    if stamp is None:
        return None
    material = "\x1f".join(
        [
            name,
            stamp,
            request.get_full_path(),
            permissions_digest(request.user),
            translation.get_language() or "",
            timezone.get_current_timezone_name(),
            timezone.localdate().isoformat(),
            *(str(part) for part in parts),
        ]
    )
    return f"page:{hashlib.sha256(material.encode()).hexdigest()}"


def cached_parts(key):
    return None if key is None else caches[CACHE].get(key)


def render_parts(request, context, *, content_template, title, breadcrumbs_template=None):
    """The page's parts, rendered with its placeholders."""
    context = {**context, "csrf_token": CSRF_PLACEHOLDER}
    return {
        "title": str(title),
        "breadcrumbs": render_to_string(breadcrumbs_template, context, request)
        if breadcrumbs_template
        else "",
        "content": render_to_string(content_template, context, request),
    }


def store(key, parts):
    if key is not None:
        caches[CACHE].set(key, parts)


def _whole_page_key(key, request):
    """The whole page around the parts is the user's own (the header: their
    name, their notices, the admin link): kept per user."""
    return None if key is None else f"{key}:user:{request.user.pk}"


def _has_messages(request):
    # len() loads the messages without marking them read; the page that
    # shows them is rendered, never kept.
    return bool(len(messages.get_messages(request)))


def _fill(request, text, placeholders):
    text = text.replace(CSRF_PLACEHOLDER, get_token(request))
    for name in placeholders:
        mark = placeholder(name)
        if mark in text:
            text = text.replace(mark, str(uuid.uuid4()))
    return text


def cached_whole_page(request, key, *, placeholders=()):
    """The whole page kept for this user under ``key``, filled in; None when
    there is none, or when the request has messages to show."""
    if key is None or _has_messages(request):
        return None
    html = caches[CACHE].get(_whole_page_key(key, request))
    return None if html is None else HttpResponse(_fill(request, html, placeholders))


def respond(request, parts, *, placeholders=(), status=200, key=None):
    """The whole page around ``parts``, each placeholder filled in; kept for
    this user under ``key`` when it has no messages."""
    html = render_to_string(PAGE_TEMPLATE, {"page": parts, "csrf_token": CSRF_PLACEHOLDER}, request)
    if key is not None and status == 200 and not _has_messages(request):
        caches[CACHE].set(_whole_page_key(key, request), html)
    return HttpResponse(_fill(request, html, placeholders), status=status)


class CachedPageMixin:
    """A view whose page is kept in the page cache (the module's docstring).

    The view renders its body from ``content_template_name`` (and
    ``breadcrumbs_template_name``) and its title from ``page_title``;
    ``template_name`` stays a whole page, for what is not cached (an export
    request that turns out to be a page). ``page_cacheable`` says whether a
    rendered page may be kept (not one that polls: it is live)."""

    page_cache_name = None
    content_template_name = None
    breadcrumbs_template_name = None
    page_placeholders = ()

    def page_title(self, context):
        raise NotImplementedError

    def page_key_parts(self):
        return ()

    def page_cacheable(self, context):
        return True

    def _exporting(self):
        trigger = getattr(self, "export_trigger_param", None)
        return trigger is not None and trigger in self.request.GET

    def get(self, request, *args, **kwargs):
        self.page_key = None
        if self.page_cache_name is not None and not self._exporting():
            self.page_key = page_key(request, self.page_cache_name, *self.page_key_parts())
            whole = cached_whole_page(request, self.page_key, placeholders=self.page_placeholders)
            if whole is not None:
                return whole
            parts = cached_parts(self.page_key)
            if parts is not None:
                return respond(
                    request, parts, placeholders=self.page_placeholders, key=self.page_key
                )
        return super().get(request, *args, **kwargs)

    def render_to_response(self, context, **response_kwargs):
        if self.page_cache_name is None or self._exporting():
            return super().render_to_response(context, **response_kwargs)
        parts = render_parts(
            self.request,
            context,
            content_template=self.content_template_name,
            title=self.page_title(context),
            breadcrumbs_template=self.breadcrumbs_template_name,
        )
        cacheable = self.page_cacheable(context)
        if cacheable:
            store(self.page_key, parts)
        return respond(
            self.request,
            parts,
            placeholders=self.page_placeholders,
            status=response_kwargs.get("status", 200),
            key=self.page_key if cacheable else None,
        )
