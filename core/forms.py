"""Form pieces every page shares."""

from django import forms

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
