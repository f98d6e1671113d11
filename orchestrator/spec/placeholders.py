"""Argo ``{{...}}`` placeholders: finding them and substituting them in one pass.

Owns: the placeholder grammar. Substitution is single-pass by construction (``re.sub`` with a
resolver): a value that itself contains ``{{...}}`` is inserted verbatim, never re-expanded, so a
parameter can never smuggle in another placeholder. Imports nothing from the package.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

# ``{{name}}`` holds no braces; an expression tag ``{{=…}}`` may (map literals, predicates) and ends at
# the first ``}}``, as in Argo's template engine.
PLACEHOLDER = re.compile(r"\{\{\s*(=(?:[^}]|\}(?!\}))*?|[^{}]*?)\s*\}\}")


def find(text: str) -> Iterator[str]:
    """Yield the expression inside every ``{{ expr }}`` of ``text``."""
    for m in PLACEHOLDER.finditer(text):
        yield m.group(1)


def substitute(text: str, resolve: Callable[[str], str]) -> str:
    """Replace every placeholder by ``resolve(expr)`` in a single pass."""
    if "{{" not in text:
        return text
    return PLACEHOLDER.sub(lambda m: resolve(m.group(1)), text)
