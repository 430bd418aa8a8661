"""The schedule form's When block, as a clerk sees it in each mode, on a laptop
and on a phone (issue 11, item 8)."""

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WIDTHS = [(1366, 900), (390, 844)]
# Monthly, the default, first; then each other mode and back.
MODES = ["Monthly", "Once", "Daily", "Weekly", "Monthly"]

# The page's width beyond the window (a page that scrolls sideways), and how
# the day-of-month field sits: its label's lines, its width and its left edge
# against its fieldset's.
MEASURE = """() => {
  const field = document.querySelector("#id_month_day").closest(".field");
  const label = field.querySelector("label");
  const fieldset = field.closest("fieldset");
  const lineHeight = parseFloat(getComputedStyle(label).lineHeight);
  const words = label.textContent.trim().split(/\\s+/);
  const probe = document.createElement("span");
  probe.style.font = getComputedStyle(label).font;
  probe.style.position = "absolute";
  probe.style.whiteSpace = "nowrap";
  probe.textContent = words.reduce((a, b) => (a.length >= b.length ? a : b));
  document.body.appendChild(probe);
  const longestWord = probe.getBoundingClientRect().width;
  probe.remove();
  return {
    overflow: document.documentElement.scrollWidth - document.documentElement.clientWidth,
    labelLines: Math.round(label.getBoundingClientRect().height / lineHeight),
    fieldWidth: field.getBoundingClientRect().width,
    longestWord: longestWord,
    indent: field.getBoundingClientRect().left - fieldset.getBoundingClientRect().left
      - parseFloat(getComputedStyle(fieldset).paddingLeft),
  };
}"""

OVERFLOW = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"

# Every field of the When block that shows: how far its top is below the
# legend's bottom (negative: the field sits beside the legend).
WHEN_BELOW_LEGEND = """() => {
  const when = [...document.querySelectorAll("fieldset")].find(
    (f) => f.querySelector("legend").textContent.trim() === "When");
  const legendBottom = when.querySelector("legend").getBoundingClientRect().bottom;
  return [...when.querySelectorAll(".field")]
    .filter((f) => f.getClientRects().length)
    .map((f) => Math.round(f.getBoundingClientRect().top - legendBottom));
}"""


@pytest.mark.parametrize(("width", "height"), WIDTHS, ids=["1366", "390"])
def test_schedule_form_fits_the_window_in_every_mode(
    page, live_server, sign_in, browser_clerk, screenshot, width, height
):
    page.set_viewport_size({"width": width, "height": height})
    sign_in("clerk")
    page.goto(f"{live_server.url}/billing/schedules/new/")
    # Monthly is the default mode.
    expect(page.get_by_label("Monthly")).to_be_checked()

    for mode in MODES:
        page.get_by_label(mode, exact=True).check()
        expect(page.get_by_label(mode, exact=True)).to_be_checked()
        screenshot(f"schedule-form-{mode.lower()}-{width}")
        assert page.evaluate(OVERFLOW) <= 0, f"{mode} at {width} px scrolls sideways"
        # Nothing in the When block is pushed beside the legend.
        below = page.evaluate(WHEN_BELOW_LEGEND)
        assert below, mode
        assert all(gap >= 0 for gap in below), (mode, width, below)

        weekdays = page.get_by_text("Days of the week", exact=True)
        month_day = page.get_by_label("Day of the month")
        if mode == "Weekly":
            expect(weekdays).to_be_visible()
        else:
            expect(weekdays).to_be_hidden()
        if mode == "Monthly":
            expect(month_day).to_be_visible()
            measured = page.evaluate(MEASURE)
            assert measured["labelLines"] == 1, measured
            assert measured["fieldWidth"] > 3 * measured["longestWord"], measured
            assert abs(measured["indent"]) < 1, measured
        else:
            expect(month_day).to_be_hidden()


@pytest.mark.parametrize(("width", "height"), WIDTHS, ids=["1366", "390"])
def test_the_schedule_pages_fit_the_window(
    page, live_server, sign_in, browser_clerk, screenshot, width, height
):
    from tests.test_schedules_views import a_schedule

    schedule = a_schedule(
        browser_clerk,
        name="Weekly on weekdays",
        repeats="weekly",
        weekdays=[0, 1, 2, 3, 4],
        day_of_month=None,
        exclude_charge_types=["usage"],
    )
    page.set_viewport_size({"width": width, "height": height})
    sign_in("clerk")
    for path, name in [
        ("/billing/schedules/", "list"),
        (f"/billing/schedules/{schedule.pk}/", "detail"),
        (f"/billing/schedules/{schedule.pk}/edit/", "edit"),
    ]:
        page.goto(f"{live_server.url}{path}")
        screenshot(f"schedule-{name}-{width}")
        assert page.evaluate(OVERFLOW) <= 0, f"{path} at {width} px scrolls sideways"
    # The edit form opens in the schedule's own mode, weekly.
    expect(page.get_by_label("Weekly", exact=True)).to_be_checked()
    expect(page.get_by_text("Days of the week", exact=True)).to_be_visible()
    excluded = page.get_by_role("group", name="Charge types to exclude")
    expect(excluded.get_by_label("Usage")).to_be_checked()
    expect(excluded.get_by_label("One-time")).not_to_be_checked()
