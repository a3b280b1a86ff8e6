"""Writes test.jsonl and test2.jsonl here: problems made for codeduel's tests, in the exact
schema of LiveCodeBench's `code_generation_lite` files (private tests encoded as the real
files encode them: base64 of zlib of a pickled JSON string). Run it to rebuild them:
`python tests/data/livecodebench/make_fixtures.py`."""

from __future__ import annotations

import base64
import json
import pickle
import zlib
from pathlib import Path

HERE = Path(__file__).parent


def _tests(pairs: list[tuple[str, str]], testtype: str) -> list[dict[str, str]]:
    return [{"input": i, "output": o, "testtype": testtype} for i, o in pairs]


def _encoded(tests: list[dict[str, str]]) -> str:
    return base64.b64encode(zlib.compress(pickle.dumps(json.dumps(tests)))).decode()


def problem(
    qid: str,
    title: str,
    content: str,
    platform: str,
    date: str,
    starter: str,
    public: list[tuple[str, str]],
    private: list[tuple[str, str]],
    func_name: str | None = None,
    difficulty: str = "easy",
) -> dict[str, str]:
    kind = "functional" if func_name else "stdin"
    return {
        "question_title": title,
        "question_content": content,
        "platform": platform,
        "question_id": qid,
        "contest_id": qid.split("_")[0],
        "contest_date": date,
        "starter_code": starter,
        "difficulty": difficulty,
        "public_test_cases": json.dumps(_tests(public, kind)),
        "private_test_cases": _encoded(_tests(private, kind)),
        "metadata": json.dumps({"func_name": func_name} if func_name else {}),
    }


FIRST = [
    # Functional, LeetCode style: each input line is one JSON argument.
    problem(
        "9001",
        "max-pair-sum",
        "Given an integer array nums and an integer k, return the largest sum of two "
        "elements of nums whose sum is at most k, or -1 if there is none.",
        "leetcode",
        "2023-08-05T00:00:00",
        "class Solution:\n    def maxPairSum(self, nums: List[int], k: int) -> int:\n        ",
        [("[1, 2, 3, 4]\n6", "6"), ("[5, 5]\n3", "-1")],
        [("[10, 20, 30]\n45", "40"), ("[1, 1, 1]\n2", "2"), ("[7]\n100", "-1")],
        func_name="maxPairSum",
    ),
    # Functional with a float answer: compared with ==, as LiveCodeBench does.
    problem(
        "9002",
        "mean-of-extremes",
        "Return the mean of the smallest and the largest element of nums, as a float.",
        "leetcode",
        "2023-12-02T00:00:00",
        "class Solution:\n    def meanOfExtremes(self, nums: List[int]) -> float:\n        ",
        [("[1, 2, 4]", "2.5")],
        [("[3]", "3.0"), ("[-1, 10, 4]", "4.5"), ("[1, 2]", "1.5")],
        func_name="meanOfExtremes",
    ),
    # Stdin over several lines: N, then N lines of integers; print each line's sum.
    problem(
        "abc900_a",
        "Row Sums",
        "The first line holds N. Each of the next N lines holds integers. Print the sum of "
        "each line, one per line.",
        "atcoder",
        "2024-03-09T00:00:00",
        "",
        [("2\n1 2 3\n4 5\n", "6\n9\n")],
        [("3\n1\n2 2\n3 3 3\n", "1\n4\n9\n"), ("1\n-5 5\n", "0\n")],
        difficulty="medium",
    ),
]

SECOND = [
    # Stdin with a float answer: LiveCodeBench compares such lines as Decimals.
    problem(
        "1999_A",
        "Average",
        "The first line holds N, the second N integers. Print their average.",
        "codeforces",
        "2024-09-14T00:00:00",
        "",
        [("4\n1 2 3 4\n", "2.50\n")],
        [("2\n1 2\n", "1.5\n"), ("3\n1 1 2\n", "1.3333333333\n")],
    ),
    # The per-test time limit: the agreement tests' slow answers run past it here.
    problem(
        "abc901_b",
        "Count Pairs",
        "The first line holds N, the second N integers. Print how many pairs i < j have "
        "A_i + A_j divisible by 7.",
        "atcoder",
        "2025-02-22T00:00:00",
        "",
        [("4\n1 6 7 14\n", "2\n")],
        [("3\n7 7 7\n", "3\n"), ("6\n1 2 3 4 5 6\n", "3\n")],
        difficulty="hard",
    ),
]


def main() -> None:
    for name, rows in (("test.jsonl", FIRST), ("test2.jsonl", SECOND)):
        text = "".join(json.dumps(row) + "\n" for row in rows)
        (HERE / name).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
