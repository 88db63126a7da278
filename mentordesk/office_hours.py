"""Moved: office hours now live along their seams.

- ``mentordesk.flows.office_hours``: the flow (join, leave, answers, busy times, feed);
- ``mentordesk.flows.office_hours_admin``: the coordinator's commands and their errors;
- ``mentordesk.calendar.recurrence`` and ``mentordesk.calendar.series``: the weekly maths
  and the series' iCalendar objects.

This module only keeps old imports working; import from the modules above instead.
"""

from __future__ import annotations

from .flows.office_hours import OfficeHoursDesk, says_join, says_leave
from .flows.office_hours_admin import OfficeHoursError

__all__ = ["OfficeHoursDesk", "OfficeHoursError", "says_join", "says_leave"]
