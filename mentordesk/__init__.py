"""mentordesk: runs a volunteer mentoring program over email and calendars."""

__version__ = "0.1.0"
