"""Form pieces every page shares."""

from django import forms
from django.forms.models import ModelChoiceIterator

# A date picker. Its value is YYYY-MM-DD whatever the language of the page
# (the HTML date input reads and writes only that), so the format is fixed.
DATE_INPUT = forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")


class FilterForm(forms.Form):
    """Filter forms label their fields without a trailing colon."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)


class UploadForm(forms.Form):
    """An import file's upload (core.uploads): the file only. Its content is
    checked by the import itself, in the task, as the command checks it."""

    file = forms.FileField(label="File")

    def __init__(self, *args, label="File", help_text="", accept="", **kwargs):
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
        field = self.fields["file"]
        field.label, field.help_text = label, help_text
        if accept:
            field.widget.attrs["accept"] = accept


class FetchedChoiceIterator(ModelChoiceIterator):
    """A model choice field's options from one plain fetch of its queryset.
    Django's iterator reads a queryset without prefetches by
    ``.iterator()``, which on PostgreSQL outside a transaction is a
    server-side cursor declared WITH HOLD: three round trips and the result
    materialized, the slowest query of the bill run list for a short list of
    users."""

    def __iter__(self):
        if self.field.empty_label is not None:
            yield ("", self.field.empty_label)
        for obj in self.queryset.all():
            yield self.choice(obj)


class FetchedModelChoiceField(forms.ModelChoiceField):
    iterator = FetchedChoiceIterator
