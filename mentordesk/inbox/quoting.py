"""What surrounds the new words of a message: greetings, quoted history, signatures.

``strip_reply`` keeps what the sender wrote this time and any message they forward
(``own_words`` only what they wrote); ``is_greeting_line`` and ``strip_greeting`` read
the "Hi Ada," in front of it, from the one ``GREETINGS`` table. Pure functions.
"""

from __future__ import annotations

import re

__all__ = ["GREETINGS", "is_greeting_line", "own_words", "strip_greeting", "strip_reply"]


# --- greetings -------------------------------------------------------------------------

# The words a message opens with, as people write them (matched ignoring case).
GREETINGS = (
    # English
    "hi", "hello", "hey", "hiya", "howdy", "dear", "greetings", "good morning",
    "good afternoon", "good evening", "good day", "to whom it may concern",
    # German
    "hallo", "moin", "servus", "guten tag", "guten morgen", "guten abend", "liebe", "lieber",
    "sehr geehrte", "sehr geehrter",
    # Dutch
    "hoi", "beste", "goedemorgen", "goedemiddag", "goedenavond",
    # Spanish, Portuguese
    "hola", "buenos días", "buenos dias", "buenas tardes", "buenas noches", "estimado",
    "estimada", "estimados", "olá", "bom dia", "boa tarde", "boa noite", "prezado", "prezada",
    # French
    "bonjour", "bonsoir", "salut", "cher", "chère", "chers",
    # Italian
    "ciao", "buongiorno", "buonasera", "salve", "gentile",
    # Scandinavian, Finnish, Polish, Turkish
    "hej", "hei", "hallå", "terve", "cześć", "dzień dobry", "witam", "merhaba",
)  # fmt: skip

_OPENING = re.compile(
    r"\s*(?:"
    + "|".join(
        re.escape(word).replace(r"\ ", r"\s+") for word in sorted(GREETINGS, key=len, reverse=True)
    )
    + r")(?![\w'’-])",
    re.IGNORECASE,
)
# Who is greeted: up to four words ("Ada", "Code Mentors", "Dr. Smith", "Sir/Madam"),
# then the greeting's own punctuation or the end of the line. A comma may come first
# ("Hello, Ada!") but then the greeting must end in punctuation: "Hi, claim" is a greeting
# and a command, not a greeting of someone called Claim.
_ADDRESSEE = re.compile(
    r"(?P<comma>\s*,)?(?P<name>(?:\s+[^\W\d_][\w'’./-]*){1,4})\s*(?P<end>[,!:;，！：]+|$)"
)
_BARE_END = re.compile(r"\s*(?:[,!:;.，！：]+|$)")
# Words a greeted name never holds: where they follow "Hi", a sentence has begun
# ("Hi I need help", "Hi please withdraw").
_NOT_NAMES = frozenset(
    {
        "i", "i'm", "im", "i'd", "i've", "i'll", "me", "my", "we", "it", "it's", "its", "this",
        "that", "is", "are", "am", "was", "be", "have", "has", "had", "do", "does", "did",
        "can", "could", "would", "will", "should", "may", "please", "pls", "plz", "need",
        "want", "just", "to", "how", "what", "why", "when", "where", "who", "which", "hope",
        "thanks", "thank", "thx", "not", "don't", "dont", "no", "yes", "so", "sorry",
        "quick", "question",
    }
)  # fmt: skip
# Lower-case words that may greet without a name or punctuation ("Hey there", "Dear team").
_ADDRESSEE_WORDS = frozenset(
    {
        "there", "all", "everyone", "everybody", "team", "folks", "guys", "friends", "people",
        "mentor", "mentors", "coordinator", "coordinators", "sir", "madam", "or", "and",
        "again", "y'all", "yall", "you", "both", "zusammen", "alle", "allemaal", "a", "à",
        "todos", "tous", "tutti",
    }
)  # fmt: skip


def _greeting_end(line: str) -> int | None:
    """Where the greeting that opens ``line`` ends (its punctuation and spaces included)."""
    opening = _OPENING.match(line)
    if not opening:
        return None
    named = _ADDRESSEE.match(line, opening.end())
    if named:
        words = named.group("name").split()
        unpunctuated = not named.group("end")
        if not any(word.lower().replace("’", "'") in _NOT_NAMES for word in words) and not (
            unpunctuated
            and (
                named.group("comma")
                or not all(w[0].isupper() or w.lower() in _ADDRESSEE_WORDS for w in words)
            )
        ):
            return _spaces_after(line, named.end())
    bare = _BARE_END.match(line, opening.end())
    return _spaces_after(line, bare.end()) if bare else None


def _spaces_after(line: str, index: int) -> int:
    return len(line) - len(line[index:].lstrip())


def is_greeting_line(line: str) -> bool:
    """Whether ``line`` is only a greeting: "Hi,", "Hello Ada!", "Dear team", "Hallo"."""
    end = _greeting_end(line)
    return end is not None and not line[end:].strip()


def strip_greeting(line: str) -> str:
    """``line`` without the greeting it opens with: "Hi Ada, can you…" → "can you…".

    A line that is only a greeting gives ""; a line without one comes back unchanged.
    """
    end = _greeting_end(line)
    return line if end is None else line[end:]


# --- quoted history and signatures -----------------------------------------------------

_FORWARD_MARKER = re.compile(
    r"^\s*(?:-{2,}\s*(?:forwarded message|weitergeleitete nachricht|message transféré"
    r"|mensaje reenviado|messaggio inoltrato)\s*-{2,}"
    r"|begin forwarded message:|anfang der weitergeleiteten nachricht:)\s*$",
    re.IGNORECASE,
)
_ORIGINAL_MESSAGE = re.compile(
    r"^\s*-{2,}\s*(?:original message|ursprüngliche nachricht|message d'origine"
    r"|mensaje original|messaggio originale|oorspronkelijk bericht)\s*-{2,}\s*$",
    re.IGNORECASE,
)
# Attribution lines, "On <date>, <name> wrote:" and its translations.
_ATTRIBUTION = re.compile(
    r"^\s*(?:on\b.*\bwrote|am\b.*\bschrieb\b.*|le\b.*\ba écrit\s*|el\b.*\bescribió"
    r"|op\b.*\bschreef\b.*|il\b.*\bha scritto|em\b.*\bescreveu)\s*:\s*$",
    re.IGNORECASE,
)
_WROTE = re.compile(r"\bwrote:\s*$", re.IGNORECASE)
_HEADER_FROM = re.compile(r"^\s*\*?(?:from|von|de|da|van|från|fra)\s*:\*?\s", re.IGNORECASE)
_HEADER_SENT = re.compile(
    r"^\s*\*?(?:sent|date|gesendet|datum|envoyé|enviado|inviato|verzonden|skickat|sendt|data)"
    r"\s*:",
    re.IGNORECASE,
)
_SENT_INLINE = re.compile(r"\s(?:sent|gesendet|envoyé|enviado)\s*:", re.IGNORECASE)
_SIGNATURE = re.compile(
    r"^(?:--\s?|sent from my \w[\w ]*|get outlook for \w+|von meinem \w+ gesendet)\s*$",
    re.IGNORECASE,
)
_SEPARATOR = re.compile(r"^\s*[_\-=*]{3,}\s*$")
_MAX_MARKER_CHARS = 400  # no attribution or marker line is longer; longer ones are text


def _next_lines(lines: list[str], start: int, count: int) -> list[str]:
    """Up to ``count`` non-blank lines from ``start``, looking no further than 12 lines."""
    found: list[str] = []
    for line in lines[start : start + 12]:
        if line.strip():
            found.append(line)
            if len(found) == count:
                break
    return found


def _is_header_block(lines: list[str], i: int) -> bool:
    """Outlook's "From: … / Sent: …" block that heads a quoted or forwarded message."""
    line = lines[i]
    if not _HEADER_FROM.match(line):
        return False
    return bool(_SENT_INLINE.search(line)) or any(
        _HEADER_SENT.match(nxt) for nxt in _next_lines(lines, i + 1, 4)
    )


def _is_reply_start(lines: list[str], i: int) -> bool:
    line = lines[i]
    if _ATTRIBUTION.match(line) or _ORIGINAL_MESSAGE.match(line) or _is_header_block(lines, i):
        return True
    if re.match(r"^\s*on\s", line, re.IGNORECASE):
        # Gmail wraps a long "On … wrote:" over two lines.
        following = _next_lines(lines, i + 1, 1)
        if following and _WROTE.search(following[0]):
            return bool(_ATTRIBUTION.match(line + " " + following[0].strip()))
    if _WROTE.search(line):
        # "<name> wrote:" alone counts only when quoted lines follow it.
        following = _next_lines(lines, i + 1, 1)
        return bool(following) and following[0].startswith(">")
    return False


def strip_reply(text: str, *, forwarded: bool = False) -> str:
    """``text`` without quoted history and signature; forwarded content is kept.

    Cut at the first attribution ("On … wrote:", "Am … schrieb …:"), Outlook
    "-----Original Message-----" line or "From:/Sent:" block; drop "> " lines; skip a
    signature ("-- " line, RFC 3676 §4.3) up to any forwarded message. A forward marker
    ("---------- Forwarded message ---------", "Begin forwarded message:") keeps
    everything after it. With ``forwarded`` (a Fwd:/WG: subject) Outlook's header block and
    "Original Message" line mark a forward, not a reply, since Outlook uses them for both.
    """
    lines = text.split("\n")
    kept: list[str] = []
    in_signature = False
    for i, line in enumerate(lines):
        if len(line) > _MAX_MARKER_CHARS:  # also keeps the patterns below linear
            if not in_signature and not line.lstrip().startswith(">"):
                kept.append(line)
            continue
        forward_marker = _FORWARD_MARKER.match(line) or (
            forwarded and (_ORIGINAL_MESSAGE.match(line) or _is_header_block(lines, i))
        )
        if forward_marker:
            kept.extend(lines[i:])
            break
        if _is_reply_start(lines, i):
            break
        if _SIGNATURE.match(line):
            in_signature = True
        elif not in_signature and not line.lstrip().startswith(">"):
            kept.append(line)
    while kept and (not kept[-1].strip() or _SEPARATOR.match(kept[-1])):
        kept.pop()
    return re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip("\n")


def own_words(text: str) -> str:
    """What the sender wrote this time themselves: ``strip_reply`` without forwarded mail."""
    lines = strip_reply(text).split("\n")
    for i, line in enumerate(lines):
        if len(line) <= _MAX_MARKER_CHARS and _FORWARD_MARKER.match(line):
            lines = lines[:i]
            break
    return "\n".join(lines).strip("\n")
