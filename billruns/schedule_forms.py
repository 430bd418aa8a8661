import datetime

from django import forms
from django.utils import timezone

from billruns.forms import BATCH_CHOICES, exclude_charge_types_field
from billruns.models import Schedule
from billruns.schedules import (
    MAX_OFFSET_DAYS,
    WEEKDAY_NAMES,
    end_date_problem,
    time_zone_names,
    weekdays_problem,
)
from core.dates import DateInRangeField
from core.forms import DATE_INPUT

LAST_DAY = "last"
MONTH_DAY_CHOICES = [(str(day), str(day)) for day in range(1, 32)] + [
    (LAST_DAY, "Last day of the month")
]
BILL_CYCLE_DAY_CHOICES = [
    (Schedule.BCD_ALL, "All bill cycle days"),
    (Schedule.BCD_AS_RUN_DAY, "As run day"),
] + [(str(day), str(day)) for day in range(1, 32)]
WEEKDAY_CHOICES = [(number, name) for number, name in enumerate(WEEKDAY_NAMES)]


# The list offers the canonical Area/Location zones and UTC; the rules accept
# every IANA name (an old alias such as US/Eastern still validates, and a
# schedule that has one keeps it in its edit form).
TIME_ZONE_AREAS = frozenset(
    {
        "Africa",
        "America",
        "Antarctica",
        "Asia",
        "Atlantic",
        "Australia",
        "Europe",
        "Indian",
        "Pacific",
    }
)


def time_zone_choices():
    offered = (
        name
        for name in time_zone_names()
        if name == "UTC" or name.split("/", 1)[0] in TIME_ZONE_AREAS and "/" in name
    )
    return [(name, name) for name in sorted(offered)]


class ScheduleForm(forms.Form):
    """A schedule's fields as a clerk types them. The services check the rules
    (``billruns/schedules/rules.py``); ``service_arguments`` turns the form into
    their keyword arguments."""

    name = forms.CharField(max_length=200)
    repeats = forms.ChoiceField(
        choices=Schedule.Repeats.choices, initial=Schedule.Repeats.MONTHLY, widget=forms.RadioSelect
    )
    weekdays = forms.TypedMultipleChoiceField(
        label="Days of the week",
        choices=WEEKDAY_CHOICES,
        coerce=int,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Weekly schedules run on each day ticked.",
    )
    month_day = forms.ChoiceField(
        label="Day of the month",
        choices=MONTH_DAY_CHOICES,
        initial="1",
        help_text="Monthly schedules. Days 29 to 31 fall on the last day of shorter months.",
        error_messages={"invalid_choice": "Choose a day from 1 to 31, or the last day."},
    )
    run_time = forms.TimeField(
        widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
        initial=datetime.time(6, 0),
        help_text="In the schedule's time zone.",
    )
    time_zone = forms.ChoiceField(
        label="Time zone",
        choices=time_zone_choices,
        initial="UTC",
        error_messages={"invalid_choice": "Choose an IANA time zone, such as Europe/Berlin."},
    )
    start_date = DateInRangeField(widget=DATE_INPUT)
    end_date = DateInRangeField(
        required=False, widget=DATE_INPUT, help_text="Optional; the last day a run may fall on."
    )
    target_date_offset_days = forms.IntegerField(
        label="Target date offset (days)",
        initial=0,
        min_value=-MAX_OFFSET_DAYS,
        max_value=MAX_OFFSET_DAYS,
        help_text="Days from the run date; 0 bills up to the run date.",
    )
    invoice_date_offset_days = forms.IntegerField(
        label="Invoice date offset (days)",
        initial=0,
        min_value=-MAX_OFFSET_DAYS,
        max_value=MAX_OFFSET_DAYS,
        help_text="Days from the run date; may be before or after the target date.",
    )
    batches = forms.TypedMultipleChoiceField(
        choices=BATCH_CHOICES,
        coerce=int,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: all batches.",
    )
    bill_cycle_day = forms.ChoiceField(
        label="Bill cycle day",
        choices=BILL_CYCLE_DAY_CHOICES,
        initial=Schedule.BCD_ALL,
        help_text="As run day: the run's day of the month; on a month's last day, "
        "every bill cycle day from that day to 31.",
    )
    exclude_charge_types = exclude_charge_types_field()
    auto_post = forms.BooleanField(
        label="Post the invoices automatically when the run completes", required=False
    )

    def __init__(self, *args, schedule=None, **kwargs):
        kwargs.setdefault("label_suffix", "")
        if schedule is not None and not kwargs.get("data"):
            kwargs.setdefault("initial", self.initial_from(schedule))
        super().__init__(*args, **kwargs)
        if not self.is_bound:
            self.initial.setdefault("start_date", timezone.localdate())
        field = self.fields["time_zone"]
        current = self.data.get("time_zone") or self.initial.get("time_zone")
        if current in time_zone_names() and current not in dict(field.choices):
            field.choices = [*field.choices, (current, current)]

    @staticmethod
    def initial_from(schedule):
        initial = {
            field: getattr(schedule, field)
            for field in (
                "name",
                "repeats",
                "weekdays",
                "run_time",
                "time_zone",
                "start_date",
                "end_date",
                "target_date_offset_days",
                "invoice_date_offset_days",
                "batches",
                "bill_cycle_day",
                "exclude_charge_types",
                "auto_post",
            )
        }
        initial["month_day"] = (
            LAST_DAY if schedule.last_day_of_month else str(schedule.day_of_month or 1)
        )
        return initial

    def clean(self):
        """The rules that belong next to the fields, shown with the fields' own
        errors; the services check all the rules (the same functions) again."""
        cleaned = super().clean()
        repeats = cleaned.get("repeats")
        problem = weekdays_problem(repeats, cleaned.get("weekdays") or [])
        if problem:
            self.add_error("weekdays", problem)
        problem = end_date_problem(repeats, cleaned.get("start_date"), cleaned.get("end_date"))
        if problem:
            self.add_error("end_date", problem)
        return cleaned

    def service_arguments(self):
        data = dict(self.cleaned_data)
        month_day = data.pop("month_day")
        data["last_day_of_month"] = month_day == LAST_DAY
        data["day_of_month"] = None if month_day == LAST_DAY else int(month_day)
        return data

    # The services name two fields differently from the form.
    SERVICE_FIELDS = {"day_of_month": "month_day", "last_day_of_month": "month_day"}

    def add_service_errors(self, errors):
        for field, messages in errors.items():
            name = self.SERVICE_FIELDS.get(field, field)
            for message in messages:
                self.add_error(name if name in self.fields else None, message)
