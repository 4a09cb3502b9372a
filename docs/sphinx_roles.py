"""A Griffe extension for the API reference: Sphinx roles in docstrings become inline code.

The docstrings cross-reference with Sphinx roles (``:class:`Prior```, ``:func:`~a.b.f```),
which Markdown would print verbatim; here each becomes inline code with the name a Sphinx
build would show (the last component after ``~``).
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:class|func|meth|mod|attr|data|obj|exc|const):`(~?)([^`]+)`")


def _code(match: re.Match[str]) -> str:
    name = match[2].rsplit(".", 1)[-1] if match[1] else match[2]
    return f"`{name}`"


class SphinxRoles(griffe.Extension):
    """Rewrite the roles of every docstring as it is loaded."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = ROLE.sub(_code, obj.docstring.value)
