"""Reading the mailbox and understanding what arrives in it.

The I/O lives in ``imap``, ``maildir`` and ``source`` (the seam both mailboxes fit).
Everything else is pure: ``parse`` turns raw bytes into a ``ParsedMessage`` with
``headers``, ``charsets``, ``bodies``, ``html``, ``quoting`` and ``delivery``;
``subjects`` reads and writes subject lines; ``fields`` reads form lines; ``authres``
reads Authentication-Results; ``classify`` decides what a message is.
"""
