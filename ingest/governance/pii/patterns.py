"""Rule-first detectors of structured personal data: a regex finds a candidate, a validator or a cue
word confirms it.

:func:`find_structured` runs them on the normalized view of a text
(:mod:`~ingest.governance.pii.normalize`: format characters removed, digits of any script made
ASCII, spelled-out e-mail addresses rewritten...), and also in display order when a right-to-left
override reorders it, and maps what they find back to the original characters. Within a view,
detectors read its length-preserving ASCII *shadow* (:mod:`~ingest.governance.pii.scan`). Patterns
use explicit ASCII classes and lookarounds on ASCII letters and digits only, because ``\\w`` would
treat the Chinese character before ``13812345678`` as part of the number.

Choices that trade recall for precision (each one is a hard negative in the evaluation set):

* Passports and student/staff ids are reported only near a cue word (``护照``, ``passport``,
  ``学号``, ``student id``...), or right after another cued value of the same kind ("学号
  2021211001、2021211002").
* An 18-digit number shaped like a resident ID (province code + real date) with a wrong check
  character is neither an ID nor a bank card.
* Card numbers need a known issuer prefix and the Luhn check; 11-digit mobiles and card numbers
  followed by a unit (``Hz``, ``bit``, ``元``) or preceded by an arithmetic operator are quantities.
* IPv4/IPv6 addresses must parse with :mod:`ipaddress`; non-global ranges (private,
  documentation...) are off by default; a dotted quad right after "version", "section", "图",
  "版本"... is a version or a section number; one whose four parts are all single digits needs an
  address cue ("IP", "地址").
* URL credentials that are textbook templates (``scheme://user:password@host``) are not credentials.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterator

from ingest.governance.pii.config import IdRule, PiiConfig
from ingest.governance.pii.model import PiiMatch, PiiType, resolve_overlaps
from ingest.governance.pii.normalize import map_back, normalize, visual_order
from ingest.governance.pii.scan import Detector, Scan, digits, is_quantity
from ingest.governance.pii.validators import (
    IPAddress,
    bank_card_valid,
    ip_is_personal,
    is_id_shaped,
    known_tld,
    parse_ip,
    prc_id_valid,
)

# ---------------------------------------------------------------------------------------------
# E-mail and URL credentials
# ---------------------------------------------------------------------------------------------


_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+\-])[A-Za-z0-9_%+\-][A-Za-z0-9._%+\-]*@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+([A-Za-z]{2,24})(?![A-Za-z0-9\-])",
    re.ASCII,
)

# "git@github.com:org/repo.git" is an SSH remote (user@host:path), not a mailbox.
_SCP_PATH = re.compile(r":[A-Za-z0-9_~./\-]")


def find_emails(scan: Scan) -> Iterator[PiiMatch]:
    """Addresses ``local@domain.tld`` whose top-level domain exists (so ``logo@2x.png`` and Python's
    ``x@self.weight`` are not addresses) and that are not SSH remotes."""
    for m in _EMAIL.finditer(scan.shadow):
        if not known_tld(m.group(1)):
            continue
        if _SCP_PATH.match(scan.shadow, m.end()):
            continue
        yield PiiMatch(m.start(), m.end(), PiiType.EMAIL)


_URL_CREDENTIALS = re.compile(
    r"(?<![A-Za-z0-9+.\-])[A-Za-z][A-Za-z0-9+.\-]*://([^\s/?#@:]*):([^\s/?#@]+)@"
    r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._\-]+)(?::[0-9]{1,5})?",
    re.ASCII,
)
_TEMPLATE_USERS = frozenset({"", "user", "username", "usr", "name", "login", "userinfo", "u"})
_TEMPLATE_PASSWORDS = frozenset({"password", "pass", "passwd", "pwd", "secret", "p", "xxx", "xxxx"})
_TEMPLATE_CHARS = re.compile(r"[<>{}$*]|\.\.\.")


def find_url_credentials(scan: Scan) -> Iterator[PiiMatch]:
    """``scheme://user:secret@host[:port]`` (the user may be empty, the secret may not); the span
    ends after the host and port, the path stays."""
    for m in _URL_CREDENTIALS.finditer(scan.shadow):
        user, secret = m.group(1).lower(), m.group(2).lower()
        if _TEMPLATE_CHARS.search(user) or _TEMPLATE_CHARS.search(secret):
            continue
        if user in _TEMPLATE_USERS and secret in _TEMPLATE_PASSWORDS:
            continue
        yield PiiMatch(m.start(), m.end(), PiiType.URL_CREDENTIALS)


# ---------------------------------------------------------------------------------------------
# Phones
# ---------------------------------------------------------------------------------------------

_NUM_BEFORE = r"(?<![0-9A-Za-z.+_\-])"
_NUM_AFTER = r"(?![0-9A-Za-z]|[.\-][0-9])"
_MOBILE = re.compile(
    _NUM_BEFORE
    + r"(?:(?:\+|00)86[ \-]?|\(\+?86\)[ \-]?)?1[3-9][0-9](?:[ \-]?[0-9]{4}){2}"
    + _NUM_AFTER,
    re.ASCII,
)
_AREA = r"0(?:10|2[0-9]|[3-9][0-9]{2})"
_AREA_NO_ZERO = r"(?:10|2[0-9]|[3-9][0-9]{2})"
_LOCAL = r"[1-9][0-9]{2,3}[ \-]?[0-9]{4}"
_LANDLINE = re.compile(
    _NUM_BEFORE
    + r"(?:\("
    + _AREA
    + r"\)[ \-]?"
    + _LOCAL
    + r"|"
    + _AREA
    + r"[ \-]"
    + _LOCAL
    + r"|(?:\+|00)86[ \-]?(?:\(0\))?"
    + _AREA_NO_ZERO
    + r"[ \-]"
    + _LOCAL
    + r")"
    + _NUM_AFTER,
    re.ASCII,
)
# Area code glued to the number (01062282628): only next to a phone cue.
_LANDLINE_BARE = re.compile(_NUM_BEFORE + _AREA + r"[1-9][0-9]{6,7}" + _NUM_AFTER, re.ASCII)
_PHONE_CUES: tuple[str, ...] = (
    "电话",
    "手机",
    "座机",
    "传真",
    "联系方式",
    "tel",
    "phone",
    "fax",
    "mobile",
    "call",
)


def find_phones(scan: Scan) -> Iterator[PiiMatch]:
    """PRC mobiles (``1[3-9]x`` + 8 digits, optional ``+86``/``0086``, spaces or dashes) and
    landlines (area code + 7-8 digits, separated or in brackets; glued together only near a phone
    cue)."""
    for m in _MOBILE.finditer(scan.shadow):
        if not is_quantity(scan, m.start(), m.end()):
            yield PiiMatch(m.start(), m.end(), PiiType.PHONE)
    for m in _LANDLINE.finditer(scan.shadow):
        if not is_quantity(scan, m.start(), m.end()):
            yield PiiMatch(m.start(), m.end(), PiiType.PHONE)
    for m in _LANDLINE_BARE.finditer(scan.shadow):
        if is_quantity(scan, m.start(), m.end()):
            continue
        if scan.cue_before(m.start(), _PHONE_CUES, scan.config.cue_window):
            yield PiiMatch(m.start(), m.end(), PiiType.PHONE)


# ---------------------------------------------------------------------------------------------
# Resident ID and bank cards
# ---------------------------------------------------------------------------------------------

_ID_CARD = re.compile(
    r"(?<![0-9A-Za-z])([1-9][0-9]{5})( ?)"
    r"((?:18|19|20)[0-9]{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01]))"
    r"\2([0-9]{3}[0-9Xx])(?![0-9A-Za-z])",
    re.ASCII,
)


def find_id_cards(scan: Scan) -> Iterator[PiiMatch]:
    """18-character resident ID numbers (optionally written 6-8-4 with spaces) whose province code,
    birth date and MOD 11-2 check character are all valid."""
    for m in _ID_CARD.finditer(scan.shadow):
        if prc_id_valid(m.group(1) + m.group(3) + m.group(4)):
            yield PiiMatch(m.start(), m.end(), PiiType.ID_CARD)


_CARD_BEFORE = r"(?<![0-9A-Za-z.+_/\-])(?<![0-9][ \-])"
_CARD_PLAIN = re.compile(_CARD_BEFORE + r"[0-9]{16,19}" + _NUM_AFTER, re.ASCII)
_CARD_GROUPED = re.compile(
    _CARD_BEFORE
    + r"[0-9]{4}([ \-])[0-9]{4}\1[0-9]{4}\1[0-9]{4}(?:\1[0-9]{1,3})?"
    + r"(?![0-9A-Za-z]|[.\-][0-9]|\1[0-9])",
    re.ASCII,
)


def find_bank_cards(scan: Scan) -> Iterator[PiiMatch]:
    """16-19 digit card numbers, contiguous or in groups of four, with a known issuer prefix and a
    passing Luhn check; ID-shaped 18-digit numbers are left to :func:`find_id_cards`."""
    for pattern in (_CARD_PLAIN, _CARD_GROUPED):
        for m in pattern.finditer(scan.shadow):
            number = digits(m.group(0))
            if is_id_shaped(number) or not bank_card_valid(number):
                continue
            if not is_quantity(scan, m.start(), m.end()):
                yield PiiMatch(m.start(), m.end(), PiiType.BANK_CARD)


# ---------------------------------------------------------------------------------------------
# Cued identifiers: passports, student and staff ids
# ---------------------------------------------------------------------------------------------

_LIST_GAP = re.compile(r"\s*(?:[,，、;；/~\-]|and|to|和|及|与|或|or|至|到)?\s*$")
_MAX_LIST_GAP = 6


def _find_cued(
    scan: Scan, pattern: re.Pattern[str], cues: tuple[str, ...], pii_type: PiiType
) -> Iterator[PiiMatch]:
    """Hits of ``pattern`` that have a cue word nearby, or that directly follow a previous accepted
    hit in a list."""
    previous_end = -1
    for m in pattern.finditer(scan.shadow):
        start, end = m.start(), m.end()
        gap = scan.lower[previous_end:start] if previous_end >= 0 else None
        listed = gap is not None and len(gap) <= _MAX_LIST_GAP and _LIST_GAP.match(gap) is not None
        if (
            listed
            or scan.cue_before(start, cues, scan.config.cue_window)
            or scan.cue_after(end, cues, scan.config.cue_window_after)
        ):
            previous_end = end
            yield PiiMatch(start, end, pii_type)


_PASSPORT = re.compile(
    r"(?<![0-9A-Za-z])(?:[A-Z]{1,2}[0-9]{6,8}|[0-9]{9})(?![0-9A-Za-z])",
    re.ASCII,
)
_PASSPORT_CUES: tuple[str, ...] = ("护照", "通行证", "旅行证", "passport", "travel document")


def find_passports(scan: Scan) -> Iterator[PiiMatch]:
    """Passport and travel-permit numbers (``E12345678``, ``EA1234567``, ``G12345678``, nine digits)
    next to a cue word."""
    yield from _find_cued(scan, _PASSPORT, _PASSPORT_CUES, PiiType.PASSPORT)


@functools.lru_cache(maxsize=32)
def _id_rule_pattern(rule: IdRule) -> re.Pattern[str]:
    return re.compile(r"(?<![0-9A-Za-z])(?:" + rule.pattern + r")(?![0-9A-Za-z])", re.ASCII)


def find_student_ids(scan: Scan) -> Iterator[PiiMatch]:
    """Student and staff ids of the configured :class:`IdRule` formats, next to their cues."""
    for rule in scan.config.id_rules:
        cues = tuple(c.lower() for c in rule.cues)
        yield from _find_cued(scan, _id_rule_pattern(rule), cues, PiiType.STUDENT_ID)


# ---------------------------------------------------------------------------------------------
# IP addresses
# ---------------------------------------------------------------------------------------------

_IPV4 = re.compile(
    r"(?<![0-9A-Za-z.])[0-9]{1,3}(?:\.[0-9]{1,3}){3}(?![0-9A-Za-z]|\.[0-9])",
    re.ASCII,
)
_IPV6 = re.compile(
    r"(?<![0-9A-Za-z:._\-])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9]{1,3}(?:\.[0-9]{1,3}){3}|[0-9A-Fa-f]{1,4})?"
    r"(?![0-9A-Za-z_:])",
    re.ASCII,
)
_IP_CUES: tuple[str, ...] = (
    "ip",
    "addr",
    "host",
    "server",
    "ping",
    "from",
    "login",
    "地址",
    "主机",
    "服务器",
    "网关",
    "访问",
    "登录",
    "来自",
)
_NOT_IP_CUES: tuple[str, ...] = (
    "version",
    "ver",
    "release",
    "build",
    "section",
    "chapter",
    "figure",
    "table",
    "oid",
    "版本",
    "章节",
    "小节",
)
_NOT_IP_WINDOW = 12
# Numbering labels that sit right against a section, figure or equation number ("图 1.2.3.4",
# "第1.2.3.4节").
_LABEL_BEFORE = re.compile(r"(?:第|图|表|式|节|章|fig\.?|eq\.?|§)\s*$")
_LABEL_AFTER = re.compile(r"\s*(?:节|章|小节|版)")
_PREFIX_LENGTH = re.compile(r"/([0-9]{1,3})(?![0-9])")


def _is_network(scan: Scan, end: int, address: IPAddress) -> bool:
    """Whether the address is written as a network ("58.192.0.0/16"): a prefix, zero host bits."""
    m = _PREFIX_LENGTH.match(scan.shadow, end)
    if m is None or int(m.group(1)) >= address.max_prefixlen:
        return False
    try:
        ipaddress.ip_network(f"{address}/{m.group(1)}", strict=True)
    except ValueError:
        return False
    return True


def _personal(scan: Scan, address: IPAddress | None, end: int) -> bool:
    cfg = scan.config
    return (
        address is not None
        and ip_is_personal(
            address, include_non_global=cfg.include_non_global_ips, allowlist=cfg.ip_allowlist
        )
        and not _is_network(scan, end, address)
    )


def find_ip_addresses(scan: Scan) -> Iterator[PiiMatch]:
    """IPv4 and IPv6 host addresses that :mod:`ipaddress` accepts and that can point at a person's
    host (see :func:`~ingest.governance.pii.validators.ip_is_personal` and the module notes)."""
    for m in _IPV4.finditer(scan.shadow):
        start, end = m.span()
        if not _personal(scan, parse_ip(m.group(0)), end):
            continue
        if _LABEL_BEFORE.search(scan.lower, max(0, start - 6), start) or _LABEL_AFTER.match(
            scan.lower, end
        ):
            continue
        positive = scan.last_cue_end(start, _IP_CUES, scan.config.cue_window)
        negative = scan.last_cue_end(start, _NOT_IP_CUES, _NOT_IP_WINDOW)
        if negative > positive:
            continue
        if all(len(part) == 1 for part in m.group(0).split(".")) and positive < 0:
            continue
        yield PiiMatch(start, end, PiiType.IP_ADDRESS)
    for m in _IPV6.finditer(scan.shadow):
        address = parse_ip(m.group(0))
        if address is not None and address.version == 6 and _personal(scan, address, m.end()):
            yield PiiMatch(m.start(), m.end(), PiiType.IP_ADDRESS)


STRUCTURED_DETECTORS: tuple[Detector, ...] = (
    find_url_credentials,
    find_emails,
    find_id_cards,
    find_bank_cards,
    find_passports,
    find_student_ids,
    find_phones,
    find_ip_addresses,
)


def detect_structured(view: str, config: PiiConfig) -> list[PiiMatch]:
    """All structured PII in ``view``, a text already normalized
    (:func:`~ingest.governance.pii.normalize.normalize`), non-overlapping, sorted, with offsets into
    ``view``."""
    scan = Scan.of(view, config)
    found = [match for detect in STRUCTURED_DETECTORS for match in detect(scan)]
    return resolve_overlaps(found)


def find_reordered(text: str, config: PiiConfig) -> list[PiiMatch]:
    """Structured PII that ``text`` shows only in display order (digits stored reversed behind a
    right-to-left override), with offsets into ``text``; empty when nothing is reordered."""
    visual = visual_order(text)
    if visual is None:
        return []
    return map_back(visual, detect_structured(visual.text, config))


def find_structured(text: str, config: PiiConfig) -> list[PiiMatch]:
    """All structured PII in ``text`` (every type but PERSON), found in its normalized view and in
    display order, non-overlapping, sorted, with offsets into ``text``."""
    view = normalize(text)
    found = map_back(view, detect_structured(view.text, config))
    return resolve_overlaps(found + find_reordered(text, config))
