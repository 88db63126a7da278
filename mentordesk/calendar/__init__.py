"""Scheduling and iCalendar (iMIP) invitations and replies."""
