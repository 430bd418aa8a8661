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
