"""The flows of SPEC §3, one module each, in words a coordinator reads.

Each module says what happens, decides with the pure functions of ``inbox/``,
``calendar/`` and ``state/``, and hands its effects to the store and the mail gate.
"""
