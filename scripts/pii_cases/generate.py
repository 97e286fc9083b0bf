"""Writes ``ingest/governance/pii_eval/cases.jsonl``, the labeled PII evaluation set, from the
templates below.

Run ``python -m scripts.pii_cases.generate [PATH]`` from the repository root (deterministic: a
fixed seed); ``tests/ingest/governance/test_pii_eval.py`` fails when the checked-in file differs
from what this writes.

Templates mark values with ``⟦kind⟧`` (or ``⟦TYPE=literal⟧`` for a value written out): the
generator draws a fresh value of that kind (a mobile in one of several notations, a resident ID
with a correct check character, a Luhn-valid card...) and records its exact offsets. ``⟪kind⟫``
draws a look-alike value that is *not* PII (a wrong check character, a failing Luhn digit) and
records nothing. Ground truth is defined by the formats themselves, independently of the detector:
generated values use their own check-digit arithmetic. The obfuscated cases (values disguised with
invisible characters, other digits, spelled-out e-mail addresses...) and their hard negatives come
after the others, from :mod:`scripts.pii_cases.obfuscated`.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import random
import re
import sys
from collections.abc import Callable
from pathlib import Path

from ingest.governance.pii.model import PiiMatch, PiiType
from ingest.governance.pii_eval import CASES_PATH, EvalCase
from scripts.pii_cases import obfuscated
from scripts.pii_cases.obfuscated import OBFUSCATED_KINDS

SEED = 20240601
_MARK = re.compile(r"⟦(\w+)(?:=([^⟧]+))?⟧|⟪(\w+)⟫")

# ---------------------------------------------------------------------------------------------
# Value generators
# ---------------------------------------------------------------------------------------------

_MOBILE_PREFIXES = (
    "130",
    "131",
    "132",
    "133",
    "135",
    "136",
    "137",
    "138",
    "139",
    "147",
    "150",
    "151",
    "152",
    "155",
    "157",
    "158",
    "159",
    "166",
    "170",
    "176",
    "177",
    "178",
    "180",
    "181",
    "182",
    "185",
    "186",
    "187",
    "188",
    "189",
    "191",
    "195",
    "198",
    "199",
)
_AREA_CODES = (
    "010",
    "021",
    "020",
    "022",
    "023",
    "024",
    "025",
    "027",
    "028",
    "029",
    "0755",
    "0571",
    "0531",
    "0512",
    "0731",
    "0591",
    "0851",
    "0471",
)
_REGIONS = (
    "110105",
    "110108",
    "310104",
    "440305",
    "330106",
    "510107",
    "420111",
    "320102",
    "610113",
    "370102",
    "500103",
    "130102",
    "210102",
    "230103",
    "350102",
    "430104",
    "450103",
    "620102",
)
_CARD_PREFIXES = (
    "622202",
    "621700",
    "622848",
    "436742",
    "518710",
    "625910",
    "955880",
    "622588",
    "403391",
    "524047",
    "356827",
    "601382",
)
_IPV4_FIRST = (
    36,
    39,
    42,
    49,
    58,
    59,
    60,
    61,
    101,
    106,
    110,
    111,
    112,
    113,
    115,
    116,
    117,
    118,
    119,
    120,
    121,
    122,
    123,
    124,
    125,
    180,
    182,
    183,
    202,
    210,
    211,
    218,
    219,
    220,
    221,
    222,
)
_IPV6_PREFIXES = ("2408:8207", "240e:3b4", "2409:8a00", "2001:da8:215", "2400:da00", "2a01:4f8")
_EMAIL_LOCALS = (
    "zhangwei",
    "li.na",
    "wang_fang2021",
    "chen+course",
    "J.Smith",
    "alice.wang",
    "hr-office",
    "liuyang88",
    "sun.yue",
    "ta.signal",
    "kevin_liu",
    "m.brown",
    "xiaoming",
    "yangfan1999",
    "ZHAOLEI",
)
_EMAIL_DOMAINS = (
    "bupt.edu.cn",
    "163.com",
    "qq.com",
    "gmail.com",
    "mail.tsinghua.edu.cn",
    "example.org",
    "outlook.com",
    "126.com",
    "foxmail.com",
    "cs.stanford.edu",
    "sina.com.cn",
    "ieee.org",
    "yahoo.co.jp",
    "lab.pku.edu.cn",
)
_URL_PARTS = (
    ("mysql", "root", "Passw0rd!", "10.3.8.21", ":3306"),
    ("postgresql", "admin", "s3cr3t", "db.bupt-lab.cn", ":5432"),
    ("redis", "", "r3dis_pwd", "cache.internal", ":6379"),
    ("mongodb", "course", "Mongo2024", "cluster0.abcde.mongodb.net", ""),
    ("ftp", "student", "ftp@123".replace("@", "%40"), "ftp.example.com", ":21"),
    ("https", "deploy", "ghp_x9Kq2LmN", "git.example.com", ""),
    ("amqp", "guest", "guest2024", "mq.lab.local", ":5672"),
    ("http", "ta01", "qwerty", "202.112.10.5", ":8080"),
)
ZH_NAMES = (
    "张伟",
    "王芳",
    "李娜",
    "刘洋",
    "陈静",
    "杨帆",
    "赵磊",
    "黄丽",
    "周杰",
    "吴敏",
    "徐强",
    "孙悦",
    "马超",
    "朱琳",
    "胡斌",
    "郭晶",
    "何涛",
    "林峰",
    "罗娟",
    "欧阳明",
    "王小明",
    "李建国",
    "张丽华",
    "刘志强",
    "陈晓燕",
    "杨光",
    "赵雪",
    "孙浩然",
    "郑爽",
    "司马晓东",
)
EN_NAMES = (
    "Emily Chen",
    "Michael Brown",
    "Sarah Johnson",
    "David Lee",
    "Wei Zhang",
    "Jennifer Wu",
    "Robert Miller",
    "Laura Garcia",
    "Kevin Liu",
    "Anna Schmidt",
    "James Wilson",
    "Olivia Martin",
    "Daniel Kim",
    "Sophia Rossi",
    "Thomas Anderson",
    "Maria Lopez",
)

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def _id_check(first17: str) -> str:
    return "10X98765432"[sum(int(d) * w for d, w in zip(first17, _ID_WEIGHTS, strict=True)) % 11]


def _luhn_check_digit(body: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d = d * 2 - 9 if d * 2 > 9 else d * 2
        total += d
    return str((10 - total % 10) % 10)


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(n))


def _birth(rng: random.Random) -> str:
    day = dt.date(1955, 1, 1) + dt.timedelta(days=rng.randrange(0, 365 * 50))
    return day.strftime("%Y%m%d")


class Values:
    """Draws values of each kind, PII and look-alikes, from one seeded random generator."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self._zh = list(ZH_NAMES)
        self._en = list(EN_NAMES)
        rng.shuffle(self._zh)
        rng.shuffle(self._en)
        self._count = 0

    def _cycle(self, pool: list[str]) -> str:
        self._count += 1
        return pool[self._count % len(pool)]

    def mobile(self) -> str:
        r = self.rng
        n = r.choice(_MOBILE_PREFIXES) + _digits(r, 8)
        fmt = r.randrange(9)
        spaced, dashed = f"{n[:3]} {n[3:7]} {n[7:]}", f"{n[:3]}-{n[3:7]}-{n[7:]}"
        return (
            n,
            spaced,
            dashed,
            f"+86 {n}",
            f"+86 {spaced}",
            f"+86-{n}",
            f"0086 {n}",
            f"(+86){n}",
            f"+86 {dashed}",
        )[fmt]

    def landline(self) -> str:
        r = self.rng
        area = r.choice(_AREA_CODES)
        local = str(r.randint(2, 8)) + _digits(r, 7 if len(area) == 3 else r.choice((6, 7)))
        split = f"{local[:-4]}-{local[-4:]}"
        fmt = r.randrange(6)
        return (
            f"{area}-{local}",
            f"({area}){local}",
            f"（{area}）{split}",
            f"{area} {local}",
            f"+86-{area[1:]}-{local}",
            f"{area}-{split}",
        )[fmt]

    def landline_bare(self) -> str:
        r = self.rng
        area = r.choice(_AREA_CODES)
        return area + str(r.randint(2, 8)) + _digits(r, 7 if len(area) == 3 else 6)

    def _id_body(self) -> str:
        return self.rng.choice(_REGIONS) + _birth(self.rng) + _digits(self.rng, 3)

    def id_card(self) -> str:
        body = self._id_body()
        return body + _id_check(body)

    def id_x(self) -> str:
        while True:
            body = self._id_body()
            if _id_check(body) == "X":
                return body + self.rng.choice("Xx")

    def id_spaced(self) -> str:
        n = self.id_card()
        return f"{n[:6]} {n[6:14]} {n[14:]}"

    def bad_id(self) -> str:
        body = self._id_body()
        good = _id_check(body)
        return body + self.rng.choice([c for c in "0123456789X" if c != good])

    def _card_number(self) -> str:
        prefix = self.rng.choice(_CARD_PREFIXES)
        length = self.rng.choice((16, 16, 19))
        body = prefix + _digits(self.rng, length - len(prefix) - 1)
        return body + _luhn_check_digit(body)

    def card(self) -> str:
        return self._card_number()

    def card_grouped(self) -> str:
        n = self._card_number()
        sep = self.rng.choice(" -")
        return sep.join(n[i : i + 4] for i in range(0, len(n), 4))

    def bad_card(self) -> str:
        n = self._card_number()
        wrong = str((int(n[-1]) + self.rng.randint(1, 9)) % 10)
        n = n[:-1] + wrong
        if self.rng.random() < 0.5:
            return " ".join(n[i : i + 4] for i in range(0, len(n), 4))
        return n

    def passport(self) -> str:
        r = self.rng
        return r.choice(
            (
                "E" + _digits(r, 8),
                "G" + _digits(r, 8),
                "E" + r.choice("ABCDEFGHJK") + _digits(r, 7),
                str(r.randint(1, 9)) + _digits(r, 8),
            )
        )

    def permit(self) -> str:
        return self.rng.choice("CH") + _digits(self.rng, 8)

    def sid(self) -> str:
        return f"20{self.rng.randint(15, 24)}" + _digits(self.rng, 6)

    def ipv4(self) -> str:
        while True:
            parts = [self.rng.choice(_IPV4_FIRST)] + [self.rng.randint(1, 254) for _ in range(3)]
            text = ".".join(map(str, parts))
            if ipaddress.ip_address(text).is_global:
                return text

    def ipv6(self) -> str:
        r = self.rng
        groups = r.choice(_IPV6_PREFIXES).split(":")
        rest = [f"{r.randint(1, 0xFFFF):x}" for _ in range(8 - len(groups))]
        full = groups + rest
        if r.random() < 0.5:
            return ":".join(full)
        return ":".join(full[:4]) + "::" + rest[-1]

    def email(self) -> str:
        return f"{self.rng.choice(_EMAIL_LOCALS)}@{self.rng.choice(_EMAIL_DOMAINS)}"

    def email_upper(self) -> str:
        return self.email().upper()

    def url(self) -> str:
        scheme, user, secret, host, port = self.rng.choice(_URL_PARTS)
        return f"{scheme}://{user}:{secret}@{host}{port}"

    def zhname(self) -> str:
        return self._cycle(self._zh)

    def enname(self) -> str:
        return self._cycle(self._en)

    def rand18(self) -> str:
        while True:
            n = str(self.rng.randint(1, 9)) + _digits(self.rng, 17)
            if int(n[:2]) not in (11, 12, 31, 44, 51, 61):  # keep away from province codes
                return n


_PII_KINDS: dict[str, tuple[PiiType, Callable[[Values], str]]] = {
    "mobile": (PiiType.PHONE, Values.mobile),
    "landline": (PiiType.PHONE, Values.landline),
    "landline_bare": (PiiType.PHONE, Values.landline_bare),
    "id": (PiiType.ID_CARD, Values.id_card),
    "id_x": (PiiType.ID_CARD, Values.id_x),
    "id_spaced": (PiiType.ID_CARD, Values.id_spaced),
    "card": (PiiType.BANK_CARD, Values.card),
    "card_grouped": (PiiType.BANK_CARD, Values.card_grouped),
    "passport": (PiiType.PASSPORT, Values.passport),
    "permit": (PiiType.PASSPORT, Values.permit),
    "sid": (PiiType.STUDENT_ID, Values.sid),
    "ipv4": (PiiType.IP_ADDRESS, Values.ipv4),
    "ipv6": (PiiType.IP_ADDRESS, Values.ipv6),
    "email": (PiiType.EMAIL, Values.email),
    "email_upper": (PiiType.EMAIL, Values.email_upper),
    "url": (PiiType.URL_CREDENTIALS, Values.url),
    "zhname": (PiiType.PERSON, Values.zhname),
    "enname": (PiiType.PERSON, Values.enname),
}
_DECOY_KINDS: dict[str, Callable[[Values], str]] = {
    "bad_id": Values.bad_id,
    "bad_card": Values.bad_card,
    "rand18": Values.rand18,
}


def render(template: str, values: Values) -> tuple[str, tuple[PiiMatch, ...]]:
    """The text of ``template`` with values drawn, and the spans of the PII ones."""
    out: list[str] = []
    spans: list[PiiMatch] = []
    cursor = 0
    length = 0
    for m in _MARK.finditer(template):
        literal = template[cursor : m.start()]
        out.append(literal)
        length += len(literal)
        if m.group(2):
            value = m.group(2)
            spans.append(PiiMatch(length, length + len(value), PiiType(m.group(1))))
        elif m.group(1) in OBFUSCATED_KINDS:
            pii_type, make = OBFUSCATED_KINDS[m.group(1)]
            value = make(values.rng, lambda base: _PII_KINDS[base][1](values))
            spans.append(PiiMatch(length, length + len(value), pii_type))
        elif m.group(1):
            pii_type, draw = _PII_KINDS[m.group(1)]
            value = draw(values)
            spans.append(PiiMatch(length, length + len(value), pii_type))
        else:
            value = _DECOY_KINDS[m.group(3)](values)
        out.append(value)
        length += len(value)
        cursor = m.end()
    out.append(template[cursor:])
    return "".join(out), tuple(spans)


# ---------------------------------------------------------------------------------------------
# Templates: (language, repetitions, template)
# ---------------------------------------------------------------------------------------------

POSITIVE: tuple[tuple[str, int, str], ...] = (
    # Chinese
    ("zh", 3, "如有疑问请联系助教，手机⟦mobile⟧。"),
    ("zh", 3, "课程答疑电话：⟦landline⟧（工作日 8:30-17:00）"),
    ("zh", 3, "请将作业发送至⟦email⟧，邮件标题注明学号和姓名。"),
    ("zh", 3, "⟦zhname⟧同学，学号⟦sid⟧，请于周五前补交实验报告。"),
    ("zh", 2, "报名表：姓名：⟦zhname⟧，身份证号：⟦id⟧，联系电话：⟦mobile⟧。"),
    ("zh", 3, "奖学金将发放到银行卡⟦card⟧，请核对。"),
    ("zh", 2, "出国交流需提供护照号码⟦passport⟧及有效期。"),
    ("zh", 3, "日志显示有来自⟦ipv4⟧的异常登录尝试，已封禁该地址。"),
    ("zh", 2, "服务器的 IPv6 地址是⟦ipv6⟧，请在防火墙中放行。"),
    ("zh", 2, "数据库连接串写成了⟦url⟧/coursedb，密码泄露了，请尽快修改。"),
    ("zh", 2, "实验课联系人：⟦zhname⟧，电话⟦landline⟧，邮箱⟦email⟧。"),
    ("zh", 3, "我的手机号是⟦mobile⟧，微信同号。"),
    ("zh", 2, "请⟦zhname⟧老师审核，工号⟦sid⟧。"),
    ("zh", 2, "退款会原路退回到卡号⟦card_grouped⟧。"),
    ("zh", 2, "学号⟦sid⟧、⟦sid⟧、⟦sid⟧三位同学本周缺勤。"),
    ("zh", 3, "身份证⟦id⟧已通过实名认证。"),
    ("zh", 2, "sshd 日志：Failed password for root from ⟦ipv4⟧ port 22 ssh2"),
    ("zh", 2, "⟦zhname⟧博士的邮箱是⟦email⟧。"),
    ("zh", 2, "如遇紧急情况拨打⟦mobile⟧或办公室座机⟦landline⟧。"),
    ("zh", 2, "护照：⟦passport⟧；签发地：北京。"),
    ("zh", 2, "请把抓包得到的源地址 ⟦ipv4⟧ 和目的地址 ⟦ipv4⟧ 填入表格。"),
    ("zh", 2, "身份证号码为⟦id_spaced⟧的考生请到第三考场。"),
    ("zh", 2, "姓名：⟦zhname⟧ 学号：⟦sid⟧ 班级：2021211301"),
    ("zh", 2, "⟦zhname⟧老师的办公室电话是⟦landline⟧，分机 8001。"),
    ("zh", 2, "上网认证失败时，请把本机 IP ⟦ipv4⟧ 和学号⟦sid⟧发给网络中心。"),
    ("zh", 2, "redis 配置写的是 ⟦url⟧/0，不要提交到仓库。"),
    ("zh", 2, "身份证号（末位为X）：⟦id_x⟧"),
    ("zh", 2, "收件人：⟦zhname⟧，电话：⟦mobile⟧，地址：北京市海淀区西土城路10号。"),
    ("zh", 2, "备用联系方式：⟦landline_bare⟧"),
    ("zh", 2, "VPN 网关 [⟦ipv6⟧]:443 拒绝连接。"),
    ("zh", 2, "持有港澳通行证⟦permit⟧的同学请单独登记。"),
    ("zh", 2, "感谢⟦zhname⟧教授的指导。"),
    ("zh", 2, "作者：⟦zhname⟧（北京邮电大学信息与通信工程学院）"),
    ("zh", 2, "工资卡号：⟦card⟧，开户行：中国银行北京分行。"),
    ("zh", 2, "请登录后台 ⟦url⟧/admin 修改默认口令。"),
    ("zh", 2, "我叫⟦zhname⟧，学号是⟦sid⟧，手机⟦mobile⟧，有问题随时联系。"),
    ("zh", 1, "这道题由⟦zhname⟧同学和⟦zhname⟧同学共同完成。"),
    ("zh", 2, "联系电话：⟦mobile⟧（⟦zhname⟧老师）"),
    ("zh", 2, "邮箱⟦email⟧，电话⟦landline⟧，欢迎来信来电。"),
    ("zh", 1, "户名⟦zhname⟧，账号⟦card⟧。"),
    ("zh", 2, "防火墙拦截了 ⟦ipv4⟧:8080 发往内网的请求。"),
    ("zh", 2, "电话：⟦mobile⟧/⟦mobile⟧（白天/晚上）"),
    ("zh", 2, "| ⟦zhname⟧ | ⟦id⟧ | 男 | 2021级 |"),
    ("zh", 1, "请发邮件到<⟦email⟧>，抄送⟦email⟧。"),
    ("zh", 2, "我的学号：⟦sid⟧；一卡通号与学号相同。"),
    ("zh", 1, "联系人为⟦zhname⟧，手机⟦mobile⟧。"),
    # English
    ("en", 3, "If you have questions, email the TA at ⟦email⟧."),
    ("en", 2, "Contact ⟦enname⟧ (⟦email⟧) for the lab schedule."),
    ("en", 3, "My phone number is ⟦mobile⟧, feel free to call."),
    ("en", 2, "Student ID: ⟦sid⟧, Name: ⟦enname⟧"),
    ("en", 3, "The suspicious login came from ⟦ipv4⟧ at 03:12 UTC."),
    ("en", 2, "Passport No. ⟦passport⟧, expires 2031-05-06."),
    ("en", 2, "Please refund the fee to card ⟦card⟧."),
    ("en", 2, "The config file contains ⟦url⟧/analytics, which leaks the password."),
    ("en", 2, "Ping ⟦ipv6⟧ to check connectivity."),
    ("en", 2, "Her ID card number is ⟦id⟧."),
    ("en", 2, "Office: Room 405, Tel: ⟦landline⟧"),
    ("en", 2, "Send the report to ⟦email⟧ and cc ⟦email⟧."),
    ("en", 2, "Accepted publickey for git from ⟦ipv4⟧ port 51234 ssh2"),
    ("en", 2, "Staff ID ⟦sid⟧ is assigned to Prof. ⟦enname⟧."),
    ("en", 2, "Card number: ⟦card_grouped⟧, CVV withheld."),
    ("en", 2, "The Mongo URI ⟦url⟧/?authSource=admin was committed to a public repository."),
    ("en", 2, "Reach me on WeChat or at ⟦mobile⟧."),
    ("en", 2, "The visa form needs your passport number (⟦passport⟧) and a photo."),
    ("en", 2, "Employee ID: ⟦sid⟧; extension 8123."),
    ("en", 2, '⟦ipv4⟧ - - [12/Mar/2024:10:00:01 +0800] "GET /index.html HTTP/1.1" 200 512'),
    ("en", 2, "Traffic from [⟦ipv6⟧]:8443 was dropped by the firewall."),
    ("en", 2, "Name: ⟦enname⟧\nEmail: ⟦email⟧\nPhone: ⟦mobile⟧"),
    ("en", 2, "Resident ID ⟦id_spaced⟧ was typed with spaces."),
    ("en", 2, "Please call ⟦landline⟧ during business hours."),
    ("en", 2, "⟦enname⟧ presented the Huffman coding lab on Tuesday."),
    ("en", 2, "The intern, ⟦enname⟧, configured the router yesterday."),
    ("en", 2, "Dear ⟦enname⟧, your exam score is attached."),
    ("en", 2, "Wire the deposit to account ⟦card⟧ before Friday."),
    ("en", 2, "An ID ending in X is valid too: ⟦id_x⟧."),
    ("en", 2, "Login attempt for user admin from ⟦ipv6⟧ failed."),
    ("en", 1, "Student number ⟦sid⟧ belongs to ⟦enname⟧ in class 3."),
    ("en", 2, "Fax: ⟦landline_bare⟧"),
    ("en", 2, "Travel document: ⟦permit⟧ (Mainland Travel Permit)."),
    ("en", 2, "Set DATABASE_URL=⟦url⟧/app in the .env file, then never commit it."),
    ("en", 2, "For the grading appeal, write to ⟦email⟧ or phone ⟦mobile⟧."),
    ("en", 2, "Admin panel at http://⟦ipv4⟧/login is exposed to the Internet."),
    ("en", 2, "CONTACT: ⟦email_upper⟧"),
    ("en", 2, "The applicant's passport ⟦passport⟧ expires next year."),
    ("en", 2, "student no. ⟦sid⟧ - please verify."),
    # Mixed
    ("mixed", 2, "请联系 TA ⟦enname⟧，邮箱 ⟦email⟧。"),
    ("mixed", 2, "FTP 地址 ⟦url⟧ 仅供内部使用。"),
    ("mixed", 2, "My 学号 is ⟦sid⟧ and 手机 is ⟦mobile⟧."),
    ("mixed", 2, "服务器 server IP: ⟦ipv4⟧, SSH port 22."),
    ("mixed", 2, "银行卡 card no. ⟦card⟧ 已绑定。"),
    ("mixed", 2, "Passport 护照号: ⟦passport⟧"),
    ("mixed", 2, "身份证 ID number: ⟦id⟧"),
    ("mixed", 2, "Prof. ⟦enname⟧ 的办公电话是 ⟦landline⟧。"),
    ("mixed", 2, "⟦zhname⟧同学 (student ID ⟦sid⟧) submitted the lab report via ⟦email⟧."),
    ("mixed", 1, "The IPv6 address 服务器地址 is ⟦ipv6⟧."),
    # Written out, in the style of real submissions
    ("zh", 1, "紧急联系人：母亲，电话⟦PHONE=13501234567⟧"),
    ("zh", 1, "请向教务处咨询，电话⟦PHONE=（010）6228-2628⟧ 转 8001。"),
    ("zh", 1, "学生证号：⟦STUDENT_ID=2019210123⟧（北京邮电大学）"),
    ("zh", 1, "学号为⟦STUDENT_ID=2020211001⟧至⟦STUDENT_ID=2020211030⟧的同学参加补考。"),
    ("zh", 1, "访问日志：⟦IP_ADDRESS=58.60.1.23⟧ - - [01/Jan/2024] GET /"),
    ("zh", 1, "我的QQ邮箱是⟦EMAIL=1234567@qq.com⟧"),
    ("zh", 1, "⟦PERSON=张伟⟧老师（⟦EMAIL=zhangwei@bupt.edu.cn⟧）负责第三章。"),
    ("zh", 1, "Tel：⟦PHONE=+86 10 6228 2628⟧"),
    ("zh", 1, "表示法里写的主机地址 ⟦IP_ADDRESS=58.192.1.5⟧/16 属于教育网。"),
    ("zh", 1, "手机：⟦PHONE=１３９１２３４５６７８⟧（全角数字）"),
    (
        "en",
        1,
        "Contact Prof. ⟦PERSON=Zhang⟧ at ⟦EMAIL=zhang.wei@bupt.edu.cn⟧ or ⟦PHONE=010-62283456⟧.",
    ),
    ("en", 1, "Call me at ⟦PHONE=(+86) 139 1234 5678⟧ after 6pm."),
    ("en", 1, "My student ID is ⟦STUDENT_ID=2022211456⟧, my email is ⟦EMAIL=wz2022@bupt.edu.cn⟧."),
    ("en", 1, "The attacker used ⟦IP_ADDRESS=45.33.32.156⟧ (scanme.nmap.org) as a test target."),
    ("en", 1, "Set the password with ⟦URL_CREDENTIALS=redis://:Str0ngPass@10.0.0.5:6379⟧/0."),
    ("en", 1, "Employee no ⟦STUDENT_ID=2008112233⟧ resigned."),
    ("en", 1, "Please ask ⟦PERSON=Mary Jane Watson⟧ about the lab."),
    ("en", 1, "Sample output: ⟦BANK_CARD=4111 1111 1111 1111⟧ is the Visa test card."),
    ("en", 1, "Numbers: ⟦PHONE=13812345678⟧/⟦PHONE=13912345678⟧ (either works)."),
    ("mixed", 1, "请联系⟦PERSON=Kevin⟧（电话 ⟦PHONE=15811112222⟧）。"),
    (
        "mixed",
        1,
        "Log: user ⟦EMAIL=zhangsan@bupt.edu.cn⟧ logged in from "
        "⟦IP_ADDRESS=2408:8207:24a1:3c10::5⟧。",
    ),
)

HARD_NEGATIVE: tuple[tuple[str, str], ...] = (
    # Chinese course text
    ("zh", "香农公式 C = B log2(1+S/N) 给出了信道容量的上限。"),
    ("zh", "奈奎斯特准则指出，无码间串扰时最高码元速率为 2B 波特。"),
    ("zh", "由香农第二定理可知，当信息速率低于信道容量时存在可靠的编码方法。"),
    ("zh", "本课程代码为 EE3210，选课号 3130101，周三下午 2:00-3:35 上课。"),
    ("zh", "Python 3.11.7 与 numpy 1.26.4 在 Windows 10.0.19045 上测试通过。"),
    ("zh", "请升级到 v1.2.3.4 版本以修复该漏洞。"),
    ("zh", "固件版本 10.12.13.14 存在缓冲区溢出。"),
    ("zh", "IP 地址 999.1.1.1 不合法，因为每一段都不能超过 255。"),
    ("zh", "私有地址段 192.168.0.0/16、10.0.0.0/8 和 172.16.0.0/12 不会在公网路由。"),
    ("zh", "子网掩码 255.255.255.0 对应的前缀长度是 /24。"),
    ("zh", "默认网关通常设置为 192.168.1.1，DNS 可以用 114.114.114.114 或 223.5.5.5。"),
    ("zh", "文档示例地址 203.0.113.10 和 198.51.100.7 属于 RFC 5737 保留段。"),
    ("zh", "回环地址 127.0.0.1 只在本机有效，IPv6 中写作 ::1。"),
    ("zh", "IPv6 文档前缀 2001:db8::/32 用于教材示例，如 2001:db8:85a3::8a2e:370:7334。"),
    ("zh", "HTTP 默认端口 80，HTTPS 默认端口 443，MySQL 默认端口 3306。"),
    ("zh", "TCP 协议规范见 RFC 793，HTTP/1.1 见 RFC 2616。"),
    ("zh", "这个 18 位数字 ⟪bad_id⟫ 的校验位不对，不是有效的身份证号。"),
    ("zh", "身份证号 ⟪bad_id⟫ 校验失败，请重新输入。"),
    ("zh", "卡号 ⟪bad_card⟫ 未通过 Luhn 校验。"),
    (
        "zh",
        "文件的 SHA-256 摘要为 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08。",
    ),
    ("zh", "字符串 hello 的 MD5 值是 5d41402abc4b2a76b9719d911017c592。"),
    ("zh", "教材的 ISBN 是 978-7-302-12345-6，也可以写成 9787302123456。"),
    ("zh", "采样频率 fs = 44100 Hz，量化位数为 16 bit。"),
    ("zh", "IPv4 地址空间共有 2^32 = 4294967296 个地址。"),
    ("zh", "光速 c ≈ 299792458 m/s，波长 λ = c/f。"),
    ("zh", "若信道带宽 B = 13800000000 Hz，信噪比为 30 dB，求信道容量。"),
    ("zh", "计算 x = 15012345678 / 1000 的结果并保留两位小数。"),
    ("zh", "MAC 地址 00:1A:2B:3C:4D:5E 用于局域网内寻址。"),
    ("zh", "时间戳 1700000000 对应 2023 年 11 月。"),
    ("zh", "会议时间 2024-03-15 14:30，地点教三楼 305。"),
    ("zh", "日期可以写作 2023/10/01，也可以写作 20231001。"),
    ("zh", "学号是学生在校期间的唯一标识，一般为 10 位数字。"),
    ("zh", "序号为 2021211001 的数据包在第 3 跳被丢弃。"),
    ("zh", "E12345678 是某型号贴片电阻的物料编码。"),
    ("zh", "护照办理一般需要 7 个工作日。"),
    ("zh", "请参考教材第 3.2.1 节和图 2.4 的推导。"),
    ("zh", "详见第1.2.3.4节的证明。"),
    ("zh", "SNMP 中 OID 1.3.6.1.2.1.1.1.0 表示 sysDescr。"),
    ("zh", "logo@2x.png 是高分辨率屏幕使用的图标。"),
    ("zh", "Python 中 A @ B 表示矩阵乘法，也可以写成 x@W.T。"),
    ("zh", "URL 的一般格式为 scheme://user:password@host:port/path。"),
    ("zh", "npm 包 @openzeppelin/contracts@5.7.0 提供了 ERC20 的实现。"),
    ("zh", "各位同学请注意，期末考试安排在第 18 周。"),
    ("zh", "高中同学聚会在周六举行。"),
    ("zh", "任课老师会在课后答疑。"),
    ("zh", "这位老师讲得很清楚，同学们都听懂了。"),
    ("zh", "班主任老师和辅导员一起开会。"),
    ("zh", "新同学请到教务处报到。"),
    ("zh", "每位同学需要提交一份实验报告。"),
    ("zh", "首先生成随机密钥，然后进行加密。"),
    ("zh", "哈夫曼编码和香农-范诺编码都是变长编码。"),
    ("zh", "维纳滤波和卡尔曼滤波都是最优估计方法。"),
    ("zh", "傅里叶变换把时域信号变换到频域。"),
    ("zh", "图灵奖得主姚期智院士为本科生讲授算法课。"),
    ("zh", "π ≈ 3.14159265358979，e ≈ 2.718281828459045。"),
    ("zh", "Unix 时间 1712345678901 毫秒对应 2024 年 4 月。"),
    ("zh", "订单号 20240315123456789012 已发货。"),
    ("zh", "快递单号 SF1234567890123 正在派送。"),
    ("zh", "手机号的格式是 1 开头的 11 位数字，例如 1xx-xxxx-xxxx。"),
    ("zh", "坐标 (116.3580, 39.9610) 位于北邮海淀校区附近。"),
    ("zh", "计算 192.168 × 2 的结果。"),
    ("zh", "ARP 缓存中 192.168.1.100 对应的 MAC 是 aa:bb:cc:dd:ee:ff。"),
    ("zh", "端口扫描结果：22/tcp open ssh，8080/tcp open http-proxy。"),
    ("zh", "RSA-2048 的模数 n 有 617 位十进制数。"),
    ("zh", "2023-2024 学年第一学期课程表已发布。"),
    ("zh", "电话区号 010 代表北京，021 代表上海。"),
    ("zh", "邮编 100876 是北京邮电大学的邮政编码。"),
    ("zh", "一共有 13,812,345,678 个样本参与训练。"),
    ("zh", "比特率为 15600000000 bit/s 时需要多大的带宽？"),
    ("zh", "设备采购花费 ¥13912345678，超出预算。"),
    ("zh", "IPv6 链路本地地址 fe80::1ff:fe23:4567:890a 不可路由。"),
    ("zh", "组播地址 224.0.0.1 和 ff02::1 分别用于 IPv4 和 IPv6。"),
    ("zh", "C++ 中 std::vector<int> 与 std::map 的区别是什么？"),
    ("zh", "任务在 12:30:45 和 08:00:00 各执行一次。"),
    ("zh", "错误码 0x80070005 表示拒绝访问。"),
    ("zh", "记录的 UUID 为 550e8400-e29b-41d4-a716-446655440000。"),
    ("zh", "提交 3f2a9c1d4e5b6a7c8d9e0f1a2b3c4d5e6f7a8b9c 修复了该问题。"),
    ("zh", "(7,4) 汉明码的码率为 4/7，最小码距为 3。"),
    ("zh", "码元速率 2400 Baud，比特率 9600 bit/s。"),
    ("zh", "香农（Shannon）于 1948 年发表了《通信的数学理论》。"),
    ("zh", "请同学们课后阅读奈奎斯特 1928 年的论文。"),
    ("zh", "老师说香农极限约为 -1.6 dB。"),
    ("zh", "订单编号 ⟪rand18⟫ 的状态为已完成。"),
    ("zh", "流水号 ⟪rand18⟫ 对应一次失败的交易。"),
    ("zh", "矩阵的行列式等于 -13912345678.5。"),
    ("zh", "请输入 11 位手机号，例如 138****5678。"),
    ("zh", "该算法的时间复杂度为 O(n log n)，空间复杂度为 O(n)。"),
    ("zh", "竞赛中常用的模数是 998244353 和 1000000007。"),
    ("zh", "AS4538 是中国教育和科研计算机网的自治系统号。"),
    ("zh", "联系电话请填写在表格第 3 栏，格式如 010-XXXXXXXX。"),
    ("zh", "王老师和李老师分别负责两个班。"),
    ("zh", "本题由张老师出题。"),
    ("zh", "优秀同学代表在典礼上发言。"),
    ("zh", "向优秀同学学习。"),
    ("zh", "感谢全体老师的辛勤付出。"),
    ("zh", "明天王老师不在办公室。"),
    ("zh", "密钥长度 128 位、192 位和 256 位分别对应 AES-128、AES-192 和 AES-256。"),
    # English course text
    ("en", "Shannon's theorem gives C = B log2(1 + S/N) for an AWGN channel."),
    ("en", "Claude Shannon founded information theory in 1948."),
    ("en", "The Nyquist rate is twice the highest frequency component of the signal."),
    ("en", "Harry Nyquist and Ralph Hartley studied telegraph transmission."),
    ("en", "Alice sends Bob a message encrypted with his public key, while Eve eavesdrops."),
    ("en", "Richard Hamming introduced the (7,4) Hamming code in 1950."),
    ("en", "Huffman coding assigns shorter codewords to more frequent symbols."),
    ("en", "Dijkstra's algorithm finds shortest paths; Bellman-Ford handles negative weights."),
    ("en", "Use Python 3.11.7 and numpy 1.26.4; the build runs on Ubuntu 22.04.3."),
    ("en", "Upgrade to version 2.4.10.1 to fix the bug."),
    ("en", "See Section 4.2.1.3 for the proof."),
    ("en", "Course EE3210 meets in room 3-105; the course number is 3130101."),
    ("en", "The address 999.1.1.1 is invalid because an octet exceeds 255."),
    ("en", "Private ranges such as 10.0.0.0/8 and 192.168.0.0/16 are not routed on the Internet."),
    ("en", "Use 8.8.8.8 or 1.1.1.1 as a public DNS resolver."),
    ("en", "The documentation prefix 2001:db8::/32 is reserved for examples such as 2001:db8::1."),
    ("en", "Loopback is 127.0.0.1 and ::1; the limited broadcast address is 255.255.255.255."),
    ("en", "HTTP uses port 80, HTTPS uses 443, and SSH listens on 22."),
    ("en", "TCP is specified in RFC 793 and updated by RFC 9293."),
    ("en", "The number ⟪bad_id⟫ has the right length but a wrong check digit."),
    ("en", "The test value ⟪bad_card⟫ fails the Luhn check."),
    ("en", "Card number ⟪bad_card⟫ was rejected by the payment gateway as invalid."),
    ("en", "SHA-1 of the empty string: da39a3ee5e6b4b0d3255bfef95601890afd80709"),
    ("en", "The ISBN of the book is 978-0-13-110362-7."),
    ("en", "ISBN-10 0-306-40615-2 converts to ISBN-13 978-0-306-40615-7."),
    ("en", "The sampling rate is 44100 Hz and the bit depth is 24 bits."),
    ("en", "A 100 Gbps link carries 13500000000 bytes in about a second."),
    ("en", "MAC address 3C:52:82:1A:FE:07 belongs to the wireless card."),
    ("en", "The meeting is on 2024-05-20 at 14:00 in room 301."),
    ("en", "Timestamp 1700000000 corresponds to November 2023."),
    ("en", "Student IDs at our school have ten digits."),
    ("en", "The part number E12345678 refers to a surface-mount resistor."),
    ("en", "Your passport must be valid for at least six months."),
    ("en", "In numpy, A @ B is matrix multiplication, and x@self.weight.T works too."),
    ("en", "The retina icon is saved as logo@2x.png."),
    ("en", "A database URL has the form postgresql://user:password@host:5432/dbname."),
    ("en", "Install @openzeppelin/contracts@5.7.0 with npm."),
    ("en", "Clone git@github.com:org/repo.git over SSH."),
    ("en", "Pi is 3.14159265358979 and e is 2.718281828459045."),
    ("en", "The UUID 123e4567-e89b-12d3-a456-426614174000 identifies the record."),
    ("en", "std::vector and std::map are containers; ::operator new allocates raw memory."),
    ("en", "At 12:30:45 the job restarted."),
    ("en", "Error 0x80070005 means access denied."),
    ("en", "Call f(13, 8, 1234, 5678) to reproduce the bug."),
    ("en", "The link-local address fe80::1 is not routable."),
    ("en", "The multicast group 224.0.0.251 is used by mDNS."),
    ("en", "Dr. Shannon showed that reliable communication is possible below capacity."),
    ("en", "Professor Turing's machine model underlies computability theory."),
    ("en", "The Fourier transform, the Laplace transform and the Z-transform are related."),
    ("en", "The Viterbi algorithm decodes convolutional codes."),
    ("en", "Reed-Solomon codes are used in QR codes and CDs."),
    ("en", "Lempel-Ziv-Welch compression is used in GIF images."),
    ("en", "Diffie-Hellman key exchange relies on the discrete logarithm problem."),
    ("en", "The Kalman filter and the Wiener filter are optimal estimators."),
    ("en", "Markov chains model memoryless random processes."),
    ("en", "Bayes' theorem relates conditional probabilities."),
    ("en", "Student: Why is the capacity finite?\nTeacher: Because of noise."),
    ("en", "Teacher: Good question. Student: Thanks!"),
    ("en", "Contact: see the course website for office hours."),
    ("en", "The TA is responsible for grading the labs."),
    ("en", "Author: IEEE 802.11 Working Group"),
    ("en", "Order number ⟪rand18⟫ has shipped."),
    ("en", "Enter an 11-digit mobile number such as 138****5678."),
    ("en", "The covariance matrix has 1.38e10 entries."),
    ("en", "Gordon Moore predicted that transistor counts double every two years."),
    ("en", "Bob's public key is (e, n) = (65537, 3233)."),
    ("en", "The Shannon-Hartley theorem bounds the capacity of a band-limited channel."),
    ("en", "Hamming distance between 1011101 and 1001001 is 2."),
    ("en", "IPv4-mapped addresses look like ::ffff:192.0.2.128."),
    ("en", "The checksum of 0x4500 0x0073 0x0000 0x4000 is computed in ones' complement."),
    ("en", "The 5G NR carrier at 3500 MHz uses 30 kHz subcarrier spacing."),
    (
        "en",
        "User-Agent: Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/120.0.6099.109 Safari/537.36",
    ),
    ("en", "Build 22.10.3.15 fixed the memory leak."),
    ("en", "1234567812345670 passes the Luhn check, but no card scheme starts with 1."),
    ("en", "Office hours: Mon 14:00-16:00, Room 3-205."),
    # Mixed
    ("mixed", "香农 Shannon 于 1948 年提出 channel capacity 的概念。"),
    ("mixed", "请用 Python 3.11 运行 demo，版本号 v2.3.4.5。"),
    ("mixed", "Wireshark 中过滤 ip.addr == 192.168.1.10 的数据包。"),
    ("mixed", "RFC 1918 定义了 private address 10.0.0.0/8。"),
    ("mixed", "学号 (student ID) 一般为 10 位数字。"),
    ("mixed", "在 IPv6 中 ::ffff:192.0.2.1 是 IPv4-mapped address。"),
    ("mixed", "Nyquist 采样定理要求 fs ≥ 2 fmax。"),
    ("mixed", "Alice 和 Bob 使用 Diffie-Hellman 协商密钥。"),
    ("mixed", "卡号 ⟪bad_card⟫ is not a valid card number。"),
    ("mixed", "身份证 ⟪bad_id⟫ check digit 错误。"),
    ("mixed", "请把 Student ID 填在第 2 栏，不要填身份证号。"),
    ("zh", "请各位同学加入课程群，群号 123456789。"),
    ("zh", "验证码 384756 五分钟内有效。"),
    ("zh", "CIDR 表示法 58.192.0.0/16 表示前 16 位为网络号。"),
    ("zh", "版本 2.0.1.3 于 2024 年发布。"),
    ("zh", "实验箱编号 EE2023001 请勿外借。"),
    ("zh", "信噪比 S/N = 1000，即 30dB。"),
    ("zh", "设 x1=13, x2=8, x3=1234, x4=5678。"),
    ("zh", "图 1.2.3.4 给出了协议栈的结构。"),
    ("zh", "教育网的网段 202.112.0.0/13 由 CERNET 分配。"),
    ("en", "The ISBN 978-7-115-54608-4 identifies the textbook."),
    ("en", "Version 10.0.22631.2861 of Windows is installed."),
    ("en", "The route 0.0.0.0/0 is the default route."),
    ("en", "Use 2400:3200::1 (AliDNS) as the IPv6 resolver."),
    ("en", "The first 6 digits 622202 identify the issuing bank."),
    ("en", "The Smith chart is used in RF design."),
    ("en", "Frequencies: 1800 1900 2100 2600 MHz."),
    ("en", "Use the mask 255.255.240.0 for a /20."),
    ("en", "The hotel 5 stars rating 4.5.6.7 means nothing."),
)


def build_cases(seed: int = SEED) -> list[EvalCase]:
    """The labeled set, deterministically from ``seed``."""
    values = Values(random.Random(seed))
    cases: list[EvalCase] = []
    for language, repeats, template in POSITIVE:
        for _ in range(repeats):
            text, spans = render(template, values)
            cases.append(EvalCase(f"{language}-pos-{len(cases):04d}", language, text, spans, False))
    for language, template in HARD_NEGATIVE:
        text, spans = render(template, values)
        if spans:
            raise ValueError("hard negatives must not contain PII markers")
        cases.append(EvalCase(f"{language}-neg-{len(cases):04d}", language, text, (), True))
    for language, repeats, form, template in obfuscated.OBFUSCATED:
        for _ in range(repeats):
            text, spans = render(template, values)
            case_id = f"{language}-obf-{len(cases):04d}"
            cases.append(EvalCase(case_id, language, text, spans, False, obfuscation=form))
    for language, template in obfuscated.HARD_NEGATIVE:
        text, spans = render(template, values)
        if spans:
            raise ValueError("hard negatives must not contain PII markers")
        cases.append(EvalCase(f"{language}-neg-{len(cases):04d}", language, text, (), True))
    return cases


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0]) if args else CASES_PATH
    cases = build_cases()
    path.write_text("".join(c.to_json() + "\n" for c in cases), encoding="utf-8")
    negatives = sum(c.hard_negative for c in cases)
    print(f"wrote {len(cases)} cases ({negatives} hard negatives) to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
