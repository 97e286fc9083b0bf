"""Validators behind the PII detectors: resident ID checksum and birth date, Luhn, IP policy."""

from __future__ import annotations

import datetime as dt
import ipaddress

import pytest

from ingest.governance.pii.config import WELL_KNOWN_PUBLIC_IPS
from ingest.governance.pii.validators import (
    bank_card_valid,
    ip_is_personal,
    is_id_shaped,
    luhn_valid,
    parse_ip,
    prc_birth_date,
    prc_id_check_char,
    prc_id_valid,
)

# Specimen numbers published with GB 11643-1999 and widely used in documentation.
VALID_IDS = ("11010519491231002X", "11010119900307803X", "110101199003074477")


@pytest.mark.parametrize("number", VALID_IDS)
def test_valid_resident_ids_pass(number: str) -> None:
    assert prc_id_valid(number)
    assert prc_id_check_char(number[:17]) == number[17]


def test_lowercase_x_is_accepted() -> None:
    assert prc_id_valid("11010519491231002x")


@pytest.mark.parametrize("number", VALID_IDS)
def test_every_wrong_check_character_fails(number: str) -> None:
    for wrong in "0123456789X":
        if wrong != number[17]:
            assert not prc_id_valid(number[:17] + wrong)


def test_check_char_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        prc_id_check_char("1234")


def test_birth_date_must_be_real_and_past() -> None:
    assert prc_birth_date("11010519491231002X") == dt.date(1949, 12, 31)
    body_feb30 = "110105" + "20000230" + "123"
    assert prc_birth_date(body_feb30 + prc_id_check_char(body_feb30)) is None
    future = "110105" + "20990101" + "123"
    assert not prc_id_valid(future + prc_id_check_char(future))
    too_old = "110105" + "18800101" + "123"
    assert not prc_id_valid(too_old + prc_id_check_char(too_old))
    recent = "110105" + "20200101" + "123"
    number = recent + prc_id_check_char(recent)
    assert prc_id_valid(number)
    assert not prc_id_valid(number, today=dt.date(2019, 12, 31))


def test_birth_before_1900_fails() -> None:
    # The GB 11643-1999 specimen 440524188001010014 has a correct check character but a birth year
    # no living person has.
    assert prc_id_check_char("44052418800101001") == "4"
    assert not prc_id_valid("440524188001010014")


def test_unknown_province_code_fails() -> None:
    body = "990105" + "19900101" + "123"
    assert not prc_id_valid(body + prc_id_check_char(body))


def test_id_shape_ignores_the_check_character() -> None:
    assert is_id_shaped("110105194912310021")  # wrong check character, still ID-shaped
    assert not is_id_shaped("622202123456789012")  # no valid date inside


@pytest.mark.parametrize("digits", ["79927398713", "4111111111111111", "5555555555554444"])
def test_luhn_known_valid(digits: str) -> None:
    assert luhn_valid(digits)


@pytest.mark.parametrize("digits", ["79927398710", "4111111111111112", "", "12a4"])
def test_luhn_known_invalid(digits: str) -> None:
    assert not luhn_valid(digits)


def _with_luhn_digit(body: str) -> str:
    return next(body + d for d in "0123456789" if luhn_valid(body + d))


def test_bank_card_needs_length_prefix_and_luhn() -> None:
    unionpay = _with_luhn_digit("622202123456789")  # 16 digits
    assert bank_card_valid(unionpay)
    assert bank_card_valid(_with_luhn_digit("622848123456789012"))  # 19 digits
    assert not bank_card_valid(unionpay[:-1] + str((int(unionpay[-1]) + 1) % 10))
    assert not bank_card_valid(_with_luhn_digit("123456781234567"))  # no scheme starts with 1
    assert not bank_card_valid(_with_luhn_digit("62220212345678"))  # 15 digits
    assert not bank_card_valid("0" * 16)


def test_ip_policy() -> None:
    allow = WELL_KNOWN_PUBLIC_IPS

    def personal(text: str, include_non_global: bool = False) -> bool:
        address = parse_ip(text)
        assert address is not None
        return ip_is_personal(address, include_non_global=include_non_global, allowlist=allow)

    assert personal("58.192.10.5")
    assert personal("2408:8207:1234:5678::1")
    assert not personal("192.168.1.1")
    assert personal("192.168.1.1", include_non_global=True)
    assert not personal("203.0.113.10")  # documentation range
    assert not personal("2001:db8::1")
    assert not personal("224.0.0.251", include_non_global=True)  # multicast is never a host
    assert not personal("8.8.8.8")  # public resolver on the allowlist
    assert parse_ip("999.1.1.1") is None
    assert parse_ip("192.168.001.1") is None
    assert isinstance(parse_ip("::1"), ipaddress.IPv6Address)
