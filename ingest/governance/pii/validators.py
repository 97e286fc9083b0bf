"""Validators that turn a pattern hit into a finding: checksums, dates, address ranges.

Pure functions over ASCII digit strings (callers strip separators first). None of them raise on bad
input: a value that cannot be valid simply returns ``False``.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re

# Weights of the ISO 7064 MOD 11-2 check used by GB 11643-1999 resident identity numbers.
_ID_WEIGHTS: tuple[int, ...] = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK_CHARS = "10X98765432"

# First two digits of a resident ID: the province-level division (GB/T 2260), plus 81-83 used by
# residence permits for Hong Kong, Macao and Taiwan residents.
_PROVINCE_CODES: frozenset[int] = frozenset(
    (
        *range(11, 16),
        *range(21, 24),
        *range(31, 38),
        *range(41, 47),
        *range(50, 55),
        *range(61, 66),
        71,
        81,
        82,
        83,
    )
)

OLDEST_BIRTH_YEAR = 1900

# Issuer prefixes of card schemes with 16-19 digit numbers: Visa 4, Mastercard 51-55 and 2221-2720,
# JCB 35, UnionPay/Discover 6, and the 9-prefixed domestic debit cards of Chinese banks.
_CARD_PREFIX = re.compile(r"^(?:4|5[1-5]|2(?:22[1-9]|2[3-9]\d|[3-6]\d{2}|7[01]\d|720)|35|6|9)")


def prc_id_check_char(first17: str) -> str:
    """The check character (``0``-``9`` or ``X``) for the first 17 digits of a resident ID."""
    if len(first17) != 17 or not first17.isascii() or not first17.isdigit():
        raise ValueError("expected exactly 17 ASCII digits")
    total = sum(int(d) * w for d, w in zip(first17, _ID_WEIGHTS, strict=True))
    return _ID_CHECK_CHARS[total % 11]


def prc_birth_date(number: str, *, today: dt.date | None = None) -> dt.date | None:
    """The birth date encoded in an 18-character resident ID number, or ``None`` if it is not a real
    date between 1900-01-01 and ``today``."""
    if len(number) != 18 or not number[6:14].isascii() or not number[6:14].isdigit():
        return None
    try:
        born = dt.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return None
    limit = today or dt.date.today()
    if born.year < OLDEST_BIRTH_YEAR or born > limit:
        return None
    return born


def is_id_shaped(number: str) -> bool:
    """Whether an 18-digit string has the layout of a resident ID (province code and a plausible
    birth date), whatever its check character. Such numbers are never reported as bank cards."""
    return (
        len(number) == 18
        and number[:17].isascii()
        and number[:17].isdigit()
        and int(number[:2]) in _PROVINCE_CODES
        and prc_birth_date(number) is not None
    )


def prc_id_valid(number: str, *, today: dt.date | None = None) -> bool:
    """Whether ``number`` is a valid 18-character PRC resident ID: known province code, a real birth
    date no later than ``today``, and a correct MOD 11-2 check character (``x`` accepted for ``X``).
    """
    if len(number) != 18 or not number[:17].isascii() or not number[:17].isdigit():
        return False
    if int(number[:2]) not in _PROVINCE_CODES:
        return False
    if prc_birth_date(number, today=today) is None:
        return False
    return prc_id_check_char(number[:17]) == number[17].upper()


def luhn_valid(digits: str) -> bool:
    """Whether a string of ASCII digits passes the Luhn (mod 10) check."""
    if not digits or not digits.isascii() or not digits.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def bank_card_valid(digits: str) -> bool:
    """Whether ``digits`` is a plausible payment card number: 16-19 digits, a known issuer prefix,
    not a single repeated digit, and a passing Luhn check."""
    return (
        16 <= len(digits) <= 19
        and digits.isascii()
        and digits.isdigit()
        and _CARD_PREFIX.match(digits) is not None
        and len(set(digits)) > 1
        and luhn_valid(digits)
    )


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_CCTLDS = _words(
    """ac ad ae af ag ai al am ao aq ar as at au aw ax az ba bb bd be bf bg bh bi bj bm bn bo br bs
    bt bw by bz ca cc cd cf cg ch ci ck cl cm cn co cr cu cv cw cx cy cz de dj dk dm do dz ec ee eg
    er es et eu fi fj fk fm fo fr ga gd ge gf gg gh gi gl gm gn gp gq gr gs gt gu gw gy hk hm hn hr
    ht hu id ie il im in io iq ir is it je jm jo jp ke kg kh ki km kn kp kr kw ky kz la lb lc li lk
    lr ls lt lu lv ly ma mc md me mg mh mk ml mm mn mo mp mq mr ms mt mu mv mw mx my mz na nc ne nf
    ng ni nl no np nr nu nz om pa pe pf pg ph pk pl pm pn pr ps pt pw py qa re ro rs ru rw sa sb sc
    sd se sg sh si sk sl sm sn so sr ss st su sv sx sy sz tc td tf tg th tj tk tl tm tn to tr tt tv
    tw tz ua ug uk us uy uz va vc ve vg vi vn vu wf ws ye yt za zm zw"""
)
_GTLDS = _words(
    """com net org edu gov mil int info biz name pro mobi asia tel travel jobs museum aero coop cat
    app dev cloud tech xyz top site online store shop club vip wang ren email company group work
    live life today world news blog link art design space website host fun icu ink team studio
    academy university school college science ltd inc red pub moe cool zone center network systems
    solutions global"""
)


def known_tld(label: str) -> bool:
    """Whether ``label`` (any case) is a country-code or common generic top-level domain."""
    tld = label.lower()
    return tld in _CCTLDS or tld in _GTLDS


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_ip(text: str) -> IPAddress | None:
    """The address in ``text`` (IPv4 dotted quad without leading zeros, or IPv6), or ``None``."""
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def ip_is_personal(
    address: IPAddress,
    *,
    include_non_global: bool,
    allowlist: frozenset[str],
) -> bool:
    """Whether an address can point at a person's host.

    Private, loopback, link-local, multicast, reserved and documentation ranges (192.0.2.0/24,
    2001:db8::/32 ...) fill networking textbooks and identify nobody, so they count only when
    ``include_non_global`` is set. Multicast groups are not hosts, and addresses in ``allowlist``
    (well-known public resolvers) identify a service: neither ever counts.
    """
    if address.is_multicast or address.compressed in allowlist:
        return False
    return include_non_global or address.is_global
