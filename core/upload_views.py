"""The pages of an import file uploaded for the task queue (core.uploads):
the page that takes the upload and lists the newest ones, and each upload's
page, whose status part htmx polls until the import ends."""

from django.contrib import messages
from django.contrib.auth.mixins import PermissionRequiredMixin
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.urls import reverse
from django.views.generic import DetailView

from core.forms import UploadForm
from core.tables import UploadTable
from core.uploads import UploadRefused

# An upload page lists this many of the newest uploads.
RECENT_UPLOADS = 5


class UploadPageMixin:
    """A page whose POST uploads an import file. A subclass names the
    upload's model, the permission to upload, the form's label, help and
    accepted types, and ``store(file=, user=)``, which stores the upload and
    queues its import. The context has ``upload_form`` (for those who may
    upload) and ``uploads_table``."""

    upload_model = None
    upload_permission = ""
    upload_label = "File"
    upload_help = ""
    upload_accept = ""
    upload_form = None

    def store(self, *, file, user):
        raise NotImplementedError

    def make_upload_form(self, *args):
        return UploadForm(
            *args, label=self.upload_label, help_text=self.upload_help, accept=self.upload_accept
        )

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        may_upload = self.request.user.has_perm(self.upload_permission)
        uploads = self.upload_model.objects.select_related("uploaded_by")[:RECENT_UPLOADS]
        context.update(
            upload_form=(self.upload_form or self.make_upload_form()) if may_upload else None,
            uploads_table=UploadTable(list(uploads)),
        )
        return context

    def post(self, request, *args, **kwargs):
        if not request.user.has_perm(self.upload_permission):
            raise PermissionDenied
        form = self.make_upload_form(request.POST, request.FILES)
        if form.is_valid():
            try:
                upload = self.store(file=form.cleaned_data["file"], user=request.user)
            except UploadRefused as refusal:
                form.add_error("file", str(refusal))
            else:
                messages.success(request, f"{upload.file_name} is uploaded and queued for import.")
                return redirect(upload)
        self.upload_form = form
        response = self.get(request, *args, **kwargs)
        response.status_code = 400
        return response


class UploadDetailView(PermissionRequiredMixin, DetailView):
    """An upload's page. A subclass names the model, the permission, its
    template (which includes includes/upload_live.html), the status part's
    URL name and the page the upload came from."""

    context_object_name = "upload"
    status_url_name = ""
    back_url_name = ""
    back_label = ""
    eyebrow = "File"

    def get_queryset(self):
        return self.model.objects.select_related("uploaded_by")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(
            status_url=reverse(self.status_url_name, args=[self.object.pk]),
            back_url=reverse(self.back_url_name),
            back_label=self.back_label,
            eyebrow=self.eyebrow,
        )
        return context


class UploadStatusMixin:
    """The status part of an upload's page (includes/upload_live.html), polled
    by htmx every 2 s until the import ends; the part drawn then polls no
    more. Mixed into the subclass of UploadDetailView; GET only."""

    template_name = "includes/upload_live.html"
    http_method_names = ["get", "head", "options"]
