"""Capitals for English person names written in lower or upper case ("john smith", "EMILY CHEN").

The English name rules (:mod:`~ingest.governance.pii.names`) and the NER model read capitals: a
name written "john smith" would pass them. :func:`truecase_names` gives them a copy of the text,
exactly as long, in which the words that form a person name by the lexicons below are capitalised:
a given name followed by a surname (``john smith``, ``mary jane watson``, ``wei zhang``), a pinyin
surname followed by a pinyin given name (``wang fang``), and a lexicon name after an honorific
written with a full stop (``dr. wang``). The usual filters still decide: the NER model must still
see a person there, and scientists' names still never count.

The lexicons leave out given names that are also common English words (``will``, ``mark``,
``grace``, ``may``, ``ray``...) and every surname that course text names a law or an algorithm
after, so that "we will price it" or "claude shannon" gain no capitals.
"""

from __future__ import annotations

import re


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


GIVEN_NAMES = _words(
    """aaron adam adrian ahmed alan albert alex alexander alexandra alexis allison amanda amelia
    amit amy andrea andrew angela anita ann anna anne anthony antonio arjun arthur ashley austin
    barbara benjamin betty beverly brandon brenda brian bruce bryan caroline catherine charles
    charlotte chloe chris christian christina christine christopher cindy claire claude craig
    cynthia daniel daniela danielle david debbie deborah debra denise dennis diana diane donald
    donna dorothy douglas dylan edward eleanor elena elizabeth ellen emily emma eric erica ethan
    eugene evelyn fiona frances francesca gabriel gary george gerald gloria gregory hannah
    harold harry heather helen henry howard ian irene isaac isabel isabella ivan jacob
    jacqueline james jamie jane janet janice jason jeffrey jennifer jenny jeremy jerry jessica
    joan joanna joe john johnny jonathan jose joseph joshua joyce judith judy julia julie justin
    karen karl katherine kathleen kathryn katie kayla keith kelly kenneth kevin kimberly kyle
    larry laura lauren lawrence leah linda lisa logan lucas lucia lucy luis madison margaret
    maria marie marilyn martha mary matthew megan melissa michael michelle mohammed nancy
    natalie nathan nicholas nicole noah olivia pamela patricia patrick paul peter philip rachel
    rahul raj ralph rebecca richard robert roger ronald russell ruth ryan samantha samuel sandra
    sara sarah scott sean sharon shirley sophia sophie stephanie stephen steven susan teresa
    theresa thomas timothy tony tyler vanessa vincent virginia wayne william zachary zoe
    jie jing jun lei ming qiang tao wei xin xiaoming yan ying zhiqiang haoran xiaoyan lihua
    jianguo xiaodong jianhua fang hui chao feng juan shuang xue hao"""
)
"""Given names, English and pinyin, that are not also ordinary English words."""

PINYIN_SURNAMES = _words(
    """wang li zhang liu chen yang huang zhao wu zhou xu sun ma zhu hu guo he gao lin luo zheng
    liang xie song tang han feng deng cao peng zeng xiao tian dong pan yuan cai jiang yu du ye
    cheng wei su lu ding ren shen yao cui zhong tan fan jin shi liao jia xia fu fang bai zou meng
    xiong qin qiu hou shao qian ouyang sima"""
)
PINYIN_GIVEN = GIVEN_NAMES | _words(
    """na min bin yu yue yun hua lan li ping hong mei qing tian xia yi bo gang hai kai long peng
    rui wen xiang yong zhen jian fei hong jia"""
)
"""Pinyin given names: after a pinyin surname ("wang na", "li ping") these count as well."""

SURNAMES = PINYIN_SURNAMES | _words(
    """adams alexander allen alvarez anderson andrews armstrong arnold bailey baker barnes becker
    bennett bishop black boyd bradley brooks brown bryant burke burns butler campbell carlson
    carpenter carr carroll carter castillo castro chapman chavez clark cole coleman collins cook
    cooper cox crawford cruz cunningham daniels davies davis diaz dixon dominguez duncan dunn
    edwards elliott ellis evans ferguson fernandez fischer fisher flores foster fox franklin freeman
    gardner garcia garza gibson gilbert gomez gonzalez gordon graham grant gray green greene griffin
    gutierrez hall hamilton hansen harper harris harrison hart harvey hawkins hayes henderson
    hernandez herrera hicks hill hoffman holmes howard howell hudson hughes hunt hunter jackson
    jacobs james jenkins jensen jimenez johnson johnston jones jordan kelley kelly kennedy kim king
    klein knight koch lane larson lawrence lawson lee lewis long lopez lynch marshall martin
    martinez mason matthews mcdonald medina mendez mendoza meyer miller mills mitchell montgomery
    moore morales moreno morgan morris morrison muller murphy murray myers nelson nguyen nichols
    nunez obrien oliver olson ortega ortiz owens palmer parker patel patterson payne pena perez
    perkins perry peters peterson phillips pierce porter powell price ramirez ramos reed reyes
    reynolds rice richards richardson richter riley rivera roberts robertson robinson rodriguez
    rogers romero rose ross rossi ruiz russell ryan salazar sanchez sanders santos schmidt schneider
    schulz schwartz scott shaw silva simmons simpson sims singh smith snyder soto spencer stephens
    stevens stewart stone sullivan taylor thomas thompson torres tran tucker turner vargas vasquez
    vega wagner walker wallace ward warren washington watkins watson weaver webb weber wells west
    wheeler white williams williamson willis wilson wolf wood woods wright young"""
)
"""Surnames, English and pinyin; none of them one of the distinctive eponyms of
:data:`~ingest.governance.pii.names.DISTINCTIVE_EPONYMS`."""

_HONORIFIC_NAME = re.compile(r"(?<![a-z])(mr|mrs|ms|dr|prof)\.[ \t]+([a-z]{2,})(?![a-z])")
# Two or three words in a row on one line, matched at every word start (inside a lookahead, so
# that "dear john smith" yields "dear john" and then "john smith").
_END = r"(?![a-z\-]|['’](?!s(?![a-z])))"  # a word ends here, perhaps before a possessive 's
_WORD_RUN = re.compile(
    rf"(?<![a-z'’\-])(?=([a-z]{{2,}})[ \t]+([a-z]{{2,}}){_END}(?:[ \t]+([a-z]{{2,}}){_END})?)"
)
_ASCII_LOWER: dict[int, int] = {cp: cp + 32 for cp in range(ord("A"), ord("Z") + 1)}
_FIRST_WORDS = GIVEN_NAMES | PINYIN_SURNAMES


def _name_words(first: str, second: str, third: str | None) -> int:
    """How many of the words form a name by the lexicons (0, 2 or 3)."""
    if first in GIVEN_NAMES:
        if third is not None and second in GIVEN_NAMES and third in SURNAMES:
            return 3
        if second in SURNAMES:
            return 2
    if first in PINYIN_SURNAMES and second in PINYIN_GIVEN:
        return 2
    return 0


def truecase_names(text: str) -> str:
    """``text`` with the words of lexicon names (and of an honorific before one) capitalised;
    exactly as long as ``text``, so offsets found in it are offsets in ``text``."""
    lowered = text.translate(_ASCII_LOWER)
    spans: list[tuple[int, int]] = []
    covered = 0
    for m in _WORD_RUN.finditer(lowered):
        if m.start() < covered or m.group(1) not in _FIRST_WORDS:
            continue
        count = _name_words(m.group(1), m.group(2), m.group(3))
        if count:
            spans.extend(m.span(g) for g in range(1, count + 1))
            covered = m.end(count)
    for m in _HONORIFIC_NAME.finditer(lowered):
        # Lower-case "ms." is milliseconds as often as not ("10 ms. Ignoring queuing").
        if m.group(1) == "ms" and text[m.start()] == "m":
            continue
        if m.group(2) in SURNAMES or m.group(2) in GIVEN_NAMES:
            spans.extend((m.span(1), m.span(2)))
    if not spans:
        return text
    chars = list(text)
    for start, end in spans:
        chars[start:end] = text[start].upper() + lowered[start + 1 : end]
    return "".join(chars)
