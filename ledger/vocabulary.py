"""The shared vocabularies of the corpus: the six disciplines, the task types and the record
languages, each looked up by its value or by an English or Chinese name.

Intake validates against them, the trainer's evaluation draws its benchmark cells from them, and
the ledger stores their values; they live here, below both, so that neither imports the other.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from enum import StrEnum
from functools import lru_cache
from typing import Self

__all__ = ["DEFAULT_TASK_TYPE", "Discipline", "Language", "TaskType"]

_SEPARATORS = re.compile(r"[\s_\-]+")


def _name_key(value: str) -> str:
    """Fold a human-written name so that "Network Security", "network-security" and
    "NETWORK_SECURITY" compare equal."""
    folded = unicodedata.normalize("NFKC", value).strip().casefold()
    return _SEPARATORS.sub("_", folded)


@lru_cache(maxsize=4096)
def _lookup_value(vocabulary: type[_NamedVocabulary], name: str) -> str | None:
    # Cached: every record names its discipline, nearly always in one of a few spellings.
    key = _name_key(name)
    if key in vocabulary._value2member_map_:
        return key
    return vocabulary._aliases().get(key)


class _NamedVocabulary(StrEnum):
    """A StrEnum whose members can also be looked up by human names (English or Chinese)."""

    @classmethod
    def _aliases(cls) -> Mapping[str, str]:
        return {}

    @classmethod
    def lookup(cls, name: str) -> Self | None:
        """The member named ``name`` (its value, an English or Chinese name, any case or separator),
        or ``None`` when nothing matches."""
        value = _lookup_value(cls, name)
        return cls(value) if value is not None else None

    @classmethod
    def parse(cls, name: str) -> Self:
        """Like :meth:`lookup`, but raises ``ValueError`` naming the accepted values (never
        ``name``: it is submitter text, and error messages end up in logs)."""
        member = cls.lookup(name)
        if member is None:
            accepted = ", ".join(m.value for m in cls)
            raise ValueError(
                f"unknown {cls.__name__}; expected one of: {accepted} "
                "(or their English or Chinese names)"
            )
        return member


class Discipline(_NamedVocabulary):
    """The six course disciplines a record can belong to."""

    COMMUNICATION_PRINCIPLES = "communication_principles"
    NETWORK_SECURITY = "network_security"
    INFORMATION_THEORY = "information_theory"
    SIGNAL_PROCESSING = "signal_processing"
    COMPUTER_NETWORKS = "computer_networks"
    DATA_SCIENCE = "data_science"

    @classmethod
    def _aliases(cls) -> Mapping[str, str]:
        return _DISCIPLINE_ALIASES

    @property
    def name_en(self) -> str:
        return _DISCIPLINE_NAMES[self][0]

    @property
    def name_zh(self) -> str:
        return _DISCIPLINE_NAMES[self][1]


_DISCIPLINE_NAMES: dict[Discipline, tuple[str, str]] = {
    Discipline.COMMUNICATION_PRINCIPLES: ("Communication Principles", "通信原理"),
    Discipline.NETWORK_SECURITY: ("Network Security", "网络安全"),
    Discipline.INFORMATION_THEORY: ("Information Theory", "信息论"),
    Discipline.SIGNAL_PROCESSING: ("Signal Processing", "信号处理"),
    Discipline.COMPUTER_NETWORKS: ("Computer Networks", "计算机网络"),
    Discipline.DATA_SCIENCE: ("Data Science", "数据科学"),
}

_DISCIPLINE_ALIASES: dict[str, str] = {
    _name_key(alias): discipline.value
    for discipline, aliases in {
        Discipline.COMMUNICATION_PRINCIPLES: (
            "Principles of Communication",
            "Communication Theory",
            "Communications",
            "通信原理",
        ),
        Discipline.NETWORK_SECURITY: ("Cybersecurity", "网络安全", "网络空间安全"),
        Discipline.INFORMATION_THEORY: ("信息论", "信息论基础"),
        Discipline.SIGNAL_PROCESSING: ("DSP", "信号处理", "数字信号处理"),
        Discipline.COMPUTER_NETWORKS: ("Computer Networking", "Networking", "计算机网络"),
        Discipline.DATA_SCIENCE: ("数据科学", "数据科学导论"),
    }.items()
    for alias in (*aliases, discipline.value.replace("_", " "))
}


class TaskType(_NamedVocabulary):
    """What kind of exercise a record is; ``knowledge_qa`` when the submitter does not say."""

    KNOWLEDGE_QA = "knowledge_qa"
    CONCEPT_EXPLANATION = "concept_explanation"
    FORMULA_DERIVATION = "formula_derivation"
    CODE_EXPLANATION = "code_explanation"
    PROBLEM_SOLVING = "problem_solving"
    TEACHING_DIALOGUE = "teaching_dialogue"
    SUMMARIZATION = "summarization"
    # The eight evaluation task types (trainer/eval) are intake task types too.
    LAB_REPORT_ANALYSIS = "lab_report_analysis"
    LITERATURE_REVIEW = "literature_review"
    CASE_ANALYSIS = "case_analysis"
    PROJECT_PLANNING = "project_planning"

    @classmethod
    def _aliases(cls) -> Mapping[str, str]:
        return _TASK_TYPE_ALIASES


DEFAULT_TASK_TYPE = TaskType.KNOWLEDGE_QA

_TASK_TYPE_ALIASES: dict[str, str] = {
    _name_key(alias): task.value
    for task, aliases in {
        TaskType.KNOWLEDGE_QA: (
            "QA",
            "Question Answering",
            "Knowledge Question Answering",
            "知识问答",
            "问答",
            "知识问题",
        ),
        TaskType.CONCEPT_EXPLANATION: ("概念解释", "概念讲解"),
        TaskType.FORMULA_DERIVATION: ("Derivation", "公式推导", "推导", "公式证明"),
        TaskType.CODE_EXPLANATION: ("代码解释", "代码讲解", "代码解读", "程序解释"),
        TaskType.PROBLEM_SOLVING: ("习题解答", "问题求解", "解题"),
        TaskType.TEACHING_DIALOGUE: ("Dialogue", "Tutoring Dialogue", "教学对话", "师生对话"),
        TaskType.SUMMARIZATION: ("Summary", "摘要", "总结"),
        TaskType.LAB_REPORT_ANALYSIS: (
            "Lab Report",
            "Lab Analysis",
            "Experiment Report Analysis",
            "实验报告分析",
            "实验报告",
            "实验分析",
        ),
        TaskType.LITERATURE_REVIEW: ("Literature Survey", "Survey", "文献综述", "综述", "文献回顾"),
        TaskType.CASE_ANALYSIS: ("Case Study", "案例分析", "案例研究", "案例"),
        TaskType.PROJECT_PLANNING: ("Project Plan", "项目规划", "项目计划", "项目设计"),
    }.items()
    for alias in aliases
}


class Language(StrEnum):
    """Language of a record, detected at intake (see :mod:`ingest.language`)."""

    ZH = "zh"
    EN = "en"
    MIXED = "mixed"
