"""Function length (#17 item 4: "no function over about 80 lines without a reason").

Every function and method in ``app/`` and ``engine/`` is measured in *code* lines: the lines
from its ``def`` to its last statement, less its docstring, blank lines and comment-only lines
(nested functions count towards their parent too). Anything over :data:`MAX_CODE_LINES` must be
split into well-named helpers or listed in :data:`ALLOWED` with the reason it stays long; an
allowed function that has since become short must leave the list, so that it stays honest.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("app", "engine")
MAX_CODE_LINES = 80

# "path::qualified.name": the reason it may stay longer than MAX_CODE_LINES
ALLOWED: dict[str, str] = {
}


def code_line_count(lines: list[str], node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines of ``node`` (1-based ``lines`` of its file) that hold code: no docstring, blank or comment line."""
    doc = None
    body = node.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        doc = (body[0].lineno, body[0].end_lineno or body[0].lineno)
    count = 0
    for i in range(node.lineno, (node.end_lineno or node.lineno) + 1):
        if doc and doc[0] <= i <= doc[1]:
            continue
        text = lines[i - 1].strip()
        if text and not text.startswith("#"):
            count += 1
    return count


def _functions(tree: ast.AST, prefix: str = ""):
    """(qualified name, node) of every function in ``tree``, methods and nested ones included."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            name = prefix + node.name
            yield name, node
            yield from _functions(node, name + ".")
        elif isinstance(node, ast.ClassDef):
            yield from _functions(node, prefix + node.name + ".")
        else:
            yield from _functions(node, prefix)


def function_lengths() -> dict[str, int]:
    """``{"path::qualified.name": code lines}`` of every function under :data:`FOLDERS`."""
    out: dict[str, int] = {}
    for folder in FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            src = path.read_text(encoding="utf-8")
            lines = src.splitlines()
            rel = path.relative_to(ROOT).as_posix()
            for name, node in _functions(ast.parse(src)):
                out[f"{rel}::{name}"] = code_line_count(lines, node)
    return out


def test_code_line_count_skips_docstring_blank_and_comment_lines():
    src = 'def f(x):\n    """Doc\n\n    more doc.\n    """\n    # a comment\n\n    y = x + 1\n    return y\n'
    node = ast.parse(src).body[0]
    assert code_line_count(src.splitlines(), node) == 3  # def, y = ..., return


def test_no_function_over_the_limit_without_a_reason():
    lengths = function_lengths()
    assert len(lengths) > 500  # the walk found the code
    too_long = {k: n for k, n in lengths.items() if n > MAX_CODE_LINES and k not in ALLOWED}
    assert not too_long, (f"functions over {MAX_CODE_LINES} code lines: split them into helpers or list them "
                          f"in ALLOWED with a reason: {too_long}")


def test_allow_list_is_current():
    lengths = function_lengths()
    missing = [k for k in ALLOWED if k not in lengths]
    short = [k for k in ALLOWED if k in lengths and lengths[k] <= MAX_CODE_LINES]
    assert not missing, f"ALLOWED names functions that no longer exist: {missing}"
    assert not short, f"ALLOWED names functions now within {MAX_CODE_LINES} code lines: remove them: {short}"
    assert all(reason.strip() for reason in ALLOWED.values())
