"""The structured detectors on their own (no spaCy): what they find, and what they leave alone."""

from __future__ import annotations

import pytest

from ingest.governance.pii import IdRule, InvalidPiiConfig, PiiConfig, PiiType, find_structured

CONFIG = PiiConfig()


def found(text: str, config: PiiConfig = CONFIG) -> list[tuple[str, str]]:
    return [(m.type.value, text[m.start : m.end]) for m in find_structured(text, config)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("邮箱 zhang.wei+ta@bupt.edu.cn。", ("EMAIL", "zhang.wei+ta@bupt.edu.cn")),
        ("CONTACT: LI.NA@MAIL.TSINGHUA.EDU.CN", ("EMAIL", "LI.NA@MAIL.TSINGHUA.EDU.CN")),
        ("手机13812345678，微信同号", ("PHONE", "13812345678")),
        ("Tel: +86 139-1234-5678.", ("PHONE", "+86 139-1234-5678")),
        ("电话 0086 15012345678", ("PHONE", "0086 15012345678")),
        ("call (+86)18612345678 now", ("PHONE", "(+86)18612345678")),
        ("办公室 010-62282628", ("PHONE", "010-62282628")),
        ("深圳 (0755)1234-5678", ("PHONE", "(0755)1234-5678")),
        ("全角（０２１）６２２８２６２８", ("PHONE", "（０２１）６２２８２６２８")),
        ("Fax: +86-755-2345678", ("PHONE", "+86-755-2345678")),
        ("联系电话：01062282628", ("PHONE", "01062282628")),
        ("身份证 11010519491231002X 已认证", ("ID_CARD", "11010519491231002X")),
        ("ID 110105 19491231 002X with spaces", ("ID_CARD", "110105 19491231 002X")),
        ("卡号 6222021234567890128", ("BANK_CARD", "6222021234567890128")),
        ("card 4111 1111 1111 1111.", ("BANK_CARD", "4111 1111 1111 1111")),
        ("卡号 6222-0212-3456-7890-128", ("BANK_CARD", "6222-0212-3456-7890-128")),
        ("护照号码 E12345678", ("PASSPORT", "E12345678")),
        ("passport no. EA1234567 expires", ("PASSPORT", "EA1234567")),
        ("G12345678（护照）", ("PASSPORT", "G12345678")),
        ("学号：2021211001", ("STUDENT_ID", "2021211001")),
        ("my student ID is 2019210123.", ("STUDENT_ID", "2019210123")),
        ("工号 2008112233", ("STUDENT_ID", "2008112233")),
        ("来自 58.192.10.5 的登录", ("IP_ADDRESS", "58.192.10.5")),
        ("ping 2408:8207:1234:5678::1 now", ("IP_ADDRESS", "2408:8207:1234:5678::1")),
        ("[240e:3b4::2]:443", ("IP_ADDRESS", "240e:3b4::2")),
        (
            "jdbc mysql://root:Passw0rd@10.3.8.21:3306/db",
            ("URL_CREDENTIALS", "mysql://root:Passw0rd@10.3.8.21:3306"),
        ),
        (
            "redis://:s3cret@cache.local:6379/0",
            ("URL_CREDENTIALS", "redis://:s3cret@cache.local:6379"),
        ),
    ],
)
def test_each_structured_type_is_found(text: str, expected: tuple[str, str]) -> None:
    assert found(text) == [expected]


def test_card_number_and_luhn() -> None:
    # 6222021234567890128 passes Luhn; the same number with another last digit does not.
    assert found("卡号 6222021234567890127") == []


def test_id_with_wrong_check_character_is_neither_id_nor_card() -> None:
    assert found("110105194912310021") == []
    assert found("号码 11010519491231002X 与 110105194912310021") == [
        ("ID_CARD", "11010519491231002X")
    ]


def test_listed_student_ids_follow_the_first_cue() -> None:
    assert found("学号 2021211001、2021211002 和 2021211003 缺勤") == [
        ("STUDENT_ID", "2021211001"),
        ("STUDENT_ID", "2021211002"),
        ("STUDENT_ID", "2021211003"),
    ]


def test_a_cue_labels_only_its_own_value() -> None:
    assert found("学号：2021211001 班级：2021211301") == [("STUDENT_ID", "2021211001")]


@pytest.mark.parametrize(
    "text",
    [
        "C = B log2(1+S/N)",
        "Python 3.11.7, numpy 1.26.4, v1.2.3.4, version 2.4.10.1",
        "固件版本 10.12.13.14",
        "see Section 4.2.1.3 and 图 1.2.3.4 and 第1.2.3.4节",
        "course EE3210 and 3130101",
        "2024-03-15 14:30, 2023/10/01, 20231001",
        "HTTP 80, HTTPS 443, RFC 793, RFC 2616",
        "999.1.1.1 is not an address",
        "192.168.1.1, 10.0.0.1, 127.0.0.1, 203.0.113.10, 2001:db8::1, fe80::1, ::1",
        "CIDR 58.192.0.0/16 and 202.112.0.0/13",
        "DNS 8.8.8.8 and 114.114.114.114",
        "multicast 224.0.0.251 and ff02::1",
        "SHA-1 da39a3ee5e6b4b0d3255bfef95601890afd80709",
        "ISBN 978-7-302-12345-6 and 9787302123456 and 0-306-40615-2",
        "B = 13800000000 Hz",
        "x = 15012345678 / 1000",
        "花费 ¥13912345678",
        "MAC 00:1A:2B:3C:4D:5E and 12:30:45",
        "E12345678 is a part number",
        "2021211001 packets",
        "192.168 in prose, 3.14159265358979",
        "logo@2x.png and x@self.weight.T",
        "git@github.com:org/repo.git",
        "scheme://user:password@host:port/path",
        "postgresql://user:password@host:5432/db",
        "std::vector and ::operator new",
        "OID 1.3.6.1.2.1.1.1.0",
        "UUID 550e8400-e29b-41d4-a716-446655440000",
    ],
)
def test_hard_negatives_are_left_alone(text: str) -> None:
    assert found(text) == []


def test_private_addresses_count_when_configured() -> None:
    config = PiiConfig(include_non_global_ips=True)
    assert found("host 192.168.1.20", config) == [("IP_ADDRESS", "192.168.1.20")]


def test_custom_id_rule() -> None:
    rule = IdRule(name="staff", pattern=r"T[0-9]{6}", cues=("staff no",))
    config = PiiConfig(id_rules=(rule,))
    assert found("Staff No: T123456", config) == [("STUDENT_ID", "T123456")]
    assert found("T123456 is a part", config) == []
    assert found("学号：2021211001", config) == []


@pytest.mark.parametrize(
    ("pattern", "cues", "message"),
    [
        ("(", ("id",), "invalid pattern"),
        ("[0-9]*", ("id",), "empty string"),
        ("[0-9]{6}", (), "cue"),
    ],
)
def test_invalid_id_rules_are_rejected(pattern: str, cues: tuple[str, ...], message: str) -> None:
    with pytest.raises(InvalidPiiConfig, match=message):
        IdRule(name="bad", pattern=pattern, cues=cues)


def test_invalid_config_is_rejected() -> None:
    with pytest.raises(InvalidPiiConfig):
        PiiConfig(cue_window=0)
    rule = IdRule(name="same", pattern="[0-9]{6}", cues=("id",))
    with pytest.raises(InvalidPiiConfig, match="unique"):
        PiiConfig(id_rules=(rule, rule))


def test_config_round_trips_through_a_dict() -> None:
    config = PiiConfig(include_non_global_ips=True, ner_model=None)
    assert PiiConfig.from_dict(config.to_dict()) == config


def test_match_repr_hides_the_value() -> None:
    (match,) = find_structured("手机13812345678", CONFIG)
    assert "13812345678" not in repr(match)
    assert match.type is PiiType.PHONE
