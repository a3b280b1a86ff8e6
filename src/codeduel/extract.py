"""Pull the code out of a model's answer: fenced blocks first, then Python-shaped text."""

from __future__ import annotations

import ast
import re
import textwrap
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "AFTER_CODE",
    "CLOSE_FENCE",
    "NO_CODE",
    "THINKING_TRUNCATED",
    "ExtractMethod",
    "Extraction",
    "answer_code",
    "extract_code",
    "extract_middle",
    "sanitize",
    "thinking_truncated",
    "whole_answer",
]

CLOSE_FENCE = "\n```"
"""The fence that ends a code answer; generation stops on it, so the engine consumes it."""
# Top-level statements after the code that the sanitizer drops anyway (example calls, asserts,
# a __main__ block): generation stops there instead of writing them. On the bundled 0.5B
# model's full HumanEval run this is 16% of the answer text (docs/performance.md).
AFTER_CODE = ("\nprint(", "\nassert", "\nif __name__")
NO_CODE = "no code found in the answer"
"""The verdict's detail for an answer with nothing to run."""
THINKING_TRUNCATED = "the model's thinking hit the token limit before it wrote an answer"
"""The detail of status `thinking_truncated`: not wrong code, no code at all."""

# A FIM answer's middle: "infill" as a FIM call generated it, "infill_chat" out of a chat answer.
ExtractMethod = Literal["fenced", "fenced_unclosed", "ast", "raw", "none", "infill", "infill_chat"]


@dataclass(frozen=True)
class Extraction:
    """The code found in a model's answer, and how it was found."""

    code: str
    method: ExtractMethod


@dataclass(frozen=True)
class _Block:
    code: str
    closed: bool
    tree: ast.Module | None


@dataclass(frozen=True)
class _Window:
    code: str
    defines_entry: bool
    n_lines: int


_THINK_OPEN = "<think>"
_THINK_CLOSE = "</think>"
_THINK_BLOCK = re.compile(r"<think>.*?</think>", re.DOTALL)
# The info string is taken whole and stripped later: a lazy match before trailing blanks is O(n^2).
_FENCE = re.compile(r"[ \t]*(?P<fence>`{3,}|~{3,})(?P<info>.*)")
_PYTHON_INFO = re.compile(r"(?:py|python)[0-9.]*", re.IGNORECASE)
# A line that most likely starts Python code: a definition, a decorator or an import.
_ANCHOR = re.compile(
    r"[ \t]*(?:@|(?:async[ \t]+)?def[ \t]|class[ \t]|import[ \t]|from[ \t].*import)"
)
# Each parse of the fallback search costs O(text); this bounds it on long prose-heavy answers.
_MAX_PARSES = 128


def answer_code(
    text: str, entry_point: str, prefill: str = "", stopped: bool = False
) -> Extraction:
    """The code a model's answer gives for `entry_point`, as it is run and scored.

    The answer is taken whole, as the model wrote it: the `prefill` it continues, its `text`,
    and, when it `stopped` on a stop sequence after a prefilled fence, the closing fence the
    engine consumed. Then `extract_code`, then `sanitize` (the imports and what the entry point
    needs; example calls and asserts would run with the tests). One rule for the strategies,
    `codeduel rescore` and the bench scripts alike."""
    extraction = extract_code(whole_answer(text, prefill, stopped), entry_point)
    return Extraction(sanitize(extraction.code, entry_point), extraction.method)


def whole_answer(text: str, prefill: str = "", stopped: bool = False) -> str:
    """A model's answer as it wrote it: the `prefill` it continues, its `text`, and, when it
    `stopped` on a stop sequence after a prefilled fence, the closing fence the engine consumed."""
    return prefill + text + (CLOSE_FENCE if prefill and stopped else "")


def thinking_truncated(text: str, hit_limit: bool, reasoning_unfinished: bool = False) -> bool:
    """Whether an answer ended at the token limit while the model was still thinking: inside
    a `<think>` block it never closed, or (`reasoning_unfinished`) in the reasoning a provider
    returns apart from the text, with no text after it."""
    if not hit_limit:
        return False
    return reasoning_unfinished or text.rfind(_THINK_OPEN) > text.rfind(_THINK_CLOSE)


def extract_code(text: str, entry_point: str | None = None) -> Extraction:
    """Find the code a model meant as its answer.

    Reasoning in `<think>` tags is dropped first; an answer whose reasoning never closes has no
    code. Then, in order: the best fenced block (`fenced`, or `fenced_unclosed` when the answer
    stops inside it), the whole text when it is Python (`raw`), the largest Python run that
    holds a `def` or `class` (`ast`), else `none` with empty code. `entry_point`, the name the
    task asks for, picks among candidates. Every line of `code` appears in `text`.
    """
    lines = _strip_thinking(text.replace("\r\n", "\n").replace("\r", "\n")).split("\n")
    blocks = [b for b in _fenced_blocks(lines) if b.code]
    if blocks:
        best = _pick_block(blocks, entry_point)
        return Extraction(best.code, "fenced" if best.closed else "fenced_unclosed")
    whole = _join(lines)
    tree = _parse(whole)[0]
    if tree is not None and any(not _is_bare_word(stmt) for stmt in tree.body):
        return Extraction(whole, "raw")
    window = _python_window(lines, entry_point)
    if window is not None:
        return Extraction(window, "ast")
    return Extraction("", "none")


def _strip_thinking(text: str) -> str:
    last_close = text.rfind(_THINK_CLOSE)
    if last_close >= 0:
        # Searching only up to the last closer keeps the lazy match linear in the text's length.
        cut = last_close + len(_THINK_CLOSE)
        # A newline, so that the text on either side of a removed block stays on its own line.
        text = _THINK_BLOCK.sub("\n", text[:cut]) + text[cut:]
        orphan = text.find(_THINK_CLOSE)
        if orphan >= 0:
            # A closer with no opener: the chat template put `<think>` in the prompt.
            text = text[orphan + len(_THINK_CLOSE) :]
    if text.lstrip().startswith(_THINK_OPEN):
        # Reasoning cut off before `</think>` holds drafts, not an answer.
        return ""
    return text


def _fenced_blocks(lines: list[str]) -> list[_Block]:
    blocks: list[_Block] = []
    other_language: list[_Block] = []
    start = _orphan_closer(lines)
    if start:
        prefix = _join(lines[: start - 1])
        blocks.append(_Block(prefix, True, _parse(prefix)[0]))
    fence = ""
    python = True
    body: list[str] = []
    for line in lines[start:]:
        match = _FENCE.fullmatch(line)
        if not fence:
            if match and not (match["fence"][0] == "`" and "`" in match["info"]):
                fence, python, body = match["fence"], _is_python(match["info"]), []
        elif (
            match
            and not match["info"].strip()
            and match["fence"][0] == fence[0]
            and len(match["fence"]) >= len(fence)
        ):
            code = _join(body)
            (blocks if python else other_language).append(_Block(code, True, _parse(code)[0]))
            fence = ""
        else:
            body.append(line)
    if fence:
        code = _join(body)
        (blocks if python else other_language).append(_Block(code, False, _parse(code)[0]))
    # Blocks tagged with another language count only when no block is Python.
    return blocks if any(b.code for b in blocks) else other_language


def _orphan_closer(lines: list[str]) -> int:
    """Index after a bare first fence that closes code above it (the opener was a prefill)."""
    for index, line in enumerate(lines):
        match = _FENCE.fullmatch(line)
        if match is None:
            continue
        prefix = lines[:index]
        if match["info"].strip() or not _join(prefix):
            return 0
        starts_as_code = _ANCHOR.match(next(p for p in prefix if p.strip())) is not None
        return index + 1 if starts_as_code or _has_definition(_parse(_join(prefix))[0]) else 0
    return 0


def _is_python(info: str) -> bool:
    words = info.split()
    return not words or _PYTHON_INFO.fullmatch(words[0]) is not None


def _pick_block(blocks: Sequence[_Block], entry_point: str | None) -> _Block:
    if entry_point:
        definers = [b for b in blocks if _defines(b, entry_point)]
        if definers:
            # The last complete, parsing definition is usually the model's final answer.
            return max(reversed(definers), key=_completeness)
    parsing = [b for b in blocks if b.tree is not None]
    return max(parsing, key=lambda b: len(b.code)) if parsing else blocks[0]


def _completeness(block: _Block) -> int:
    return (block.tree is not None) + (block.tree is not None and block.closed)


def _defines(block: _Block, name: str) -> bool:
    if block.tree is not None:
        return _binds(block.tree.body, name)
    escaped = re.escape(name)
    definition = rf"^(?:(?:async[ \t]+)?def|class)[ \t]+{escaped}(?!\w)"
    assignment = rf"^{escaped}[ \t]*(?::[^=\n]*)?=(?!=)"
    return re.search(f"{definition}|{assignment}", block.code, re.MULTILINE) is not None


def _binds(body: Sequence[ast.stmt], name: str) -> bool:
    """Whether module-level code defines or assigns `name` (imports are usages, not answers)."""
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            if node.name == name:
                return True
            continue
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = (n for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
            if any(n.id == name and isinstance(n.ctx, ast.Store) for n in names):
                return True
        if isinstance(node, ast.If | ast.Try | ast.TryStar):
            nested = [*node.body, *node.orelse]
            if not isinstance(node, ast.If):
                nested += [*node.finalbody, *(s for h in node.handlers for s in h.body)]
            if _binds(nested, name):
                return True
    return False


def _python_window(lines: list[str], entry_point: str | None) -> str | None:
    """The largest run of lines from a code-looking line that parses and defines something."""
    anchors = [i for i, line in enumerate(lines) if _ANCHOR.match(line)]
    if entry_point:
        # Lines naming the entry point go first, in case the parse budget runs out.
        anchors.sort(key=lambda i: entry_point not in lines[i])
    windows: list[_Window] = []
    covered: list[range] = []
    budget = _MAX_PARSES
    for start in anchors:
        if budget <= 0:
            break
        if any(start in span for span in covered):
            continue
        end = _indented_end(lines, start)
        while end > start and budget > 0:
            budget -= 1
            code = _join(lines[start:end])
            tree, error_line = _parse(code)
            if tree is None:
                # Prose after the code is where parsing fails; keep what came before it.
                end = min(start + error_line - 1, end - 1)
                continue
            if _has_definition(tree):
                defines = entry_point is not None and _binds(tree.body, entry_point)
                windows.append(_Window(code, defines, end - start))
                covered.append(range(start, end))
            break
    if not windows:
        return None
    return max(windows, key=lambda w: (w.defines_entry, w.n_lines)).code


def _indented_end(lines: list[str], start: int) -> int:
    """End of the lines from `start` on that are indented at least as deeply as it is."""
    indent = _indent(lines[start])
    if indent == 0:
        return len(lines)
    after = range(start + 1, len(lines))
    return next((i for i in after if lines[i].strip() and _indent(lines[i]) < indent), len(lines))


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def _parse(code: str) -> tuple[ast.Module | None, int]:
    """The module, or None and the line where parsing failed (0 when unknown)."""
    try:
        with warnings.catch_warnings():
            # Invalid escapes and the like warn; they say nothing about whether this is code.
            warnings.simplefilter("ignore")
            return ast.parse(code), 0
    except SyntaxError as error:
        return None, error.lineno or 0
    # ValueError: null bytes; the others: input nested too deeply for the parser.
    except (ValueError, RecursionError, MemoryError, OverflowError):
        return None, 0


def _has_definition(tree: ast.Module | None) -> bool:
    definitions = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef
    return tree is not None and any(isinstance(n, definitions) for n in ast.walk(tree))


def _is_bare_word(stmt: ast.stmt) -> bool:
    """A lone name or literal, which is what a one-word prose answer parses as."""
    return isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Name | ast.Constant)


def _join(lines: Sequence[str]) -> str:
    """Lines as one text without a common indent or blank edges, ending in a newline."""
    text = textwrap.dedent("\n".join(lines)).strip("\n")
    return text + "\n" if text.strip() else ""


_Definition = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Assign | ast.AnnAssign


def _bound_names(node: _Definition) -> list[str]:
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return [node.name]
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    return [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]


def _complete_statements(code: str) -> tuple[ast.Module | None, str]:
    """`code` parsed; else its longest prefix, cut before a top-level line, that parses."""
    try:
        return ast.parse(code), code
    except (SyntaxError, ValueError):
        pass
    lines = code.split("\n")
    cuts = [i for i, line in enumerate(lines) if i and line[:1] not in ("", " ", "\t", "#")]
    for cut in reversed(cuts[-_MAX_PARSES:]):
        prefix = "\n".join(lines[:cut]).rstrip() + "\n"
        try:
            return ast.parse(prefix), prefix
        except (SyntaxError, ValueError):
            continue
    return None, code


def sanitize(code: str, entry_point: str) -> str:
    """Keep the imports and what `entry_point` needs; drop the rest of the top level.

    Models often append example calls, prints or asserts after the function; run with the
    tests they can crash a correct answer. Like evalplus's sanitizer, only imports and the
    definitions reachable from the entry point survive, in their original order. Code that does
    not parse as a whole (a tail cut off by the token limit, a stray indented line after the
    last call) is cut to its longest run of complete top-level statements first. Code that does
    not define the entry point is returned unchanged.
    """
    tree, code = _complete_statements(code)
    if tree is None:
        return code
    definitions: dict[str, list[_Definition]] = {}
    for node in tree.body:
        if isinstance(node, _Definition):
            for name in _bound_names(node):
                definitions.setdefault(name, []).append(node)
    if entry_point not in definitions:
        return code
    keep: set[int] = set()
    pending = [entry_point]
    seen: set[str] = set()
    while pending:
        name = pending.pop()
        if name in seen or name not in definitions:
            continue
        seen.add(name)
        for node in definitions[name]:
            keep.add(id(node))
            pending += [n.id for n in ast.walk(node) if isinstance(n, ast.Name)]
    lines = code.splitlines()
    kept = []
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom) or id(node) in keep:
            decorators = getattr(node, "decorator_list", [])
            start = min([node.lineno, *(d.lineno for d in decorators)])
            kept.append("\n".join(lines[start - 1 : node.end_lineno]))
    return "\n\n".join(kept) + "\n"


def extract_middle(
    text: str,
    prefix: str,
    suffix: str,
    *,
    chat: bool,
    prefill: str = "",
    stopped: bool = False,
    whole_lines: bool = False,
) -> Extraction:
    """The middle a fill-in-the-middle answer gives, to run as `prefix + middle + suffix`.

    A FIM call's answer (`chat` false) is the middle as the model generated it up to its
    end-of-middle token or a stop: taken as it is, as HumanEval-Infilling's harness takes a
    completion, but for the newline a stop consumed at the end of whole lines.
    A chat answer is cleaned: reasoning dropped; the first code block (the `prefill` may have
    opened it), else the whole text; then the prefix the answer repeats before the middle and
    the suffix it repeats after it, each as whole lines, are cut. With `whole_lines` (the
    middle is whole lines, the suffix starts a line) the newline a code block drops is put
    back. Indentation is kept as written: the middle's lines sit inside the prefix's code.
    """
    if not chat:
        # A stop on the line's end (a one-line hole) or the end-of-middle token ends the
        # middle's last line: the newline the engine consumed is put back.
        ended = whole_lines and stopped and text and not text.endswith("\n")
        return Extraction(text + "\n" if ended else text, "infill")
    whole = _strip_thinking(whole_answer(text, prefill, stopped).replace("\r\n", "\n"))
    middle = _first_block(whole)
    if middle is None:
        middle = whole.strip("\n") + "\n" if whole.strip() else ""
    middle = _cut_repeated_prefix(middle, prefix)
    middle = _cut_repeated_suffix(middle, suffix)
    if whole_lines and middle and not middle.endswith("\n"):
        middle += "\n"
    if not whole_lines and middle.endswith("\n") and not suffix.startswith("\n"):
        # A block always ends its last line; a span that ends inside a line does not.
        middle = middle[:-1]
    return Extraction(middle, "infill_chat")


def _first_block(text: str) -> str | None:
    """The first fenced block's lines as written (no dedent), ending in a newline; None: no
    fence. An unclosed block runs to the end."""
    lines = text.split("\n")
    opened: int | None = None
    for index, line in enumerate(lines):
        match = _FENCE.fullmatch(line)
        if match is None:
            continue
        if opened is None:
            opened = index
        elif not match["info"].strip():
            body = lines[opened + 1 : index]
            return "\n".join(body) + "\n" if body else ""
    if opened is None:
        return None
    body = lines[opened + 1 :]
    while body and not body[-1].strip():
        body.pop()
    return "\n".join(body) + "\n" if body else ""


def _cut_repeated_prefix(middle: str, prefix: str) -> str:
    """`middle` without the longest run of its first whole lines that is the prefix's end,
    starting a line of it (the answer repeated the code before the hole)."""
    if prefix and middle.startswith(prefix):
        return middle[len(prefix) :]
    best = 0
    for end in (i + 1 for i, ch in enumerate(middle) if ch == "\n"):
        head = middle[:end]
        if not head.strip():
            continue
        start = len(prefix) - len(head)
        if prefix.endswith(head) and (start == 0 or prefix[start - 1] == "\n"):
            best = end
    return middle[best:]


def _cut_repeated_suffix(middle: str, suffix: str) -> str:
    """`middle` without the longest run of its last whole lines that is the suffix's start,
    ending a line of it (the answer went on into the code after the hole)."""
    cut = len(middle) - len(suffix)
    # The whole suffix written again, from a line's start: a middle whose own last line ends
    # with the suffix's text (`        return False` before `    return False`) is kept.
    if suffix.strip() and middle.endswith(suffix) and (cut == 0 or middle[cut - 1] == "\n"):
        return middle[:cut]
    best = len(middle)
    starts = [0, *(i + 1 for i, ch in enumerate(middle[:-1]) if ch == "\n")]
    for start in starts:
        tail = middle[start:]
        line_tail = tail.removesuffix("\n")
        if not line_tail.strip():
            continue
        ends_line = suffix[len(line_tail) : len(line_tail) + 1] in ("\n", "")
        if suffix.startswith(line_tail) and ends_line:
            best = start
            break
    return middle[:best]
