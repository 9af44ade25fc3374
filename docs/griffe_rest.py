"""A griffe extension: the few reStructuredText habits of pytest-ntk's docstrings, as Markdown.

mkdocstrings renders docstrings as Markdown. pytest-ntk's docstrings are mostly plain text with
``double-backtick`` code, bullet lists and Google-style ``Args:`` sections, which Markdown renders
as they are; a few use reST constructs that Markdown would print literally. Before rendering, this
extension rewrites them in place (on griffe's copy of the docstring; the source is not touched):

- Sphinx roles ``:class:`~.nets.FullyConnected```, ``:func:``, ``:meth:``, ``:mod:``, ``:attr:``,
  ``:data:`` become code spans. When the target resolves to an object griffe loaded, the span is
  an *optional* cross-reference (a link when that object is rendered somewhere in the site, plain
  code otherwise: never a broken link);
- ``:math:`...``` becomes inline math and ``.. math::`` blocks display math (MathJax, through
  pymdownx.arithmatex);
- a paragraph ending in ``::`` followed by an indented block becomes a paragraph and a fenced
  code block;
- reST "simple tables" (columns framed by ``====`` rules) become Markdown tables;
- special methods other than ``__init__`` and ``__call__`` are left out of the classes.

Loaded by mkdocs.yml (``plugins: mkdocstrings: handlers: python: options: extensions``).
"""

from __future__ import annotations

import ast
import re
import textwrap

import griffe

_ROLE = re.compile(r":(class|func|meth|mod|attr|data|exc|obj):`([^`]+)`")
_MATH_ROLE = re.compile(r":math:`([^`]+)`")
_RULE = re.compile(r"^(\s*)(=+)((?:\s+=+)+)\s*$")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


class RestToMarkdown(griffe.Extension):
    """Rewrite every loaded object's docstring (see the module docstring)."""

    def on_object(self, *, obj: griffe.Object, loader: griffe.GriffeLoader, **kwargs) -> None:
        if obj.docstring is None:
            return
        text = obj.docstring.value
        text = _simple_tables(text)
        text = _math_blocks(text)
        text = _literal_blocks(text)
        text = _MATH_ROLE.sub(lambda m: r"\(" + m.group(1) + r"\)", text)
        text = _ROLE.sub(lambda m: _role(m.group(2), obj, loader), text)
        obj.docstring.value = text

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs) -> None:
        """Drop special methods (``__repr__``, ``__post_init__``...) from the classes: griffe counts them
        as public, but they are not part of the API a reader calls (``__init__`` stays, merged into
        the class's signature, and so does ``__call__``)."""
        _drop_dunders(pkg)


def _drop_dunders(obj: griffe.Object) -> None:
    for name, member in list(obj.members.items()):
        if member.is_alias:
            continue
        if obj.is_class and name.startswith("__") and name.endswith("__") and name not in _KEPT_DUNDERS:
            obj.del_member(name)
        elif member.is_module or member.is_class:
            _drop_dunders(member)


_KEPT_DUNDERS = ("__init__", "__call__")


# ---------------------------------------------------------------------------- roles
def _lookup(path: str, loader: griffe.GriffeLoader):
    try:
        found = loader.modules_collection.get_member(path)
    except Exception:  # noqa: BLE001 - an unknown or external path is simply not linked
        return None
    try:
        return found.final_target.path if found.is_alias else found.path
    except Exception:  # noqa: BLE001 - an alias to something griffe did not load
        return None


def _resolve(target: str, obj: griffe.Object, loader: griffe.GriffeLoader) -> str | None:
    """The full path of a role's target, searched like Sphinx: as given, then relative to the
    object and each of its parents (a leading dot means "relative")."""
    name = target.lstrip(".")
    scopes = []
    scope = obj
    while scope is not None:
        scopes.append(scope.path)
        scope = scope.parent
    candidates = [] if target.startswith(".") else [name]
    candidates += [f"{s}.{name}" for s in scopes]
    for path in candidates:
        resolved = _lookup(path, loader)
        if resolved:
            return resolved
    return None


def _role(target: str, obj: griffe.Object, loader: griffe.GriffeLoader) -> str:
    short = target.startswith("~")
    target = target.lstrip("~!")
    shown = target.lstrip(".").rsplit(".", 1)[-1] if short else target.lstrip(".")
    resolved = _resolve(target, obj, loader)
    code = f"<code>{shown}</code>"
    if resolved is None:
        return code
    return f'<autoref identifier="{resolved}" optional>{code}</autoref>'


# ---------------------------------------------------------------------------- blocks
def _math_blocks(text: str) -> str:
    """``.. math:: first line`` and its indented continuation -> ``$$ ... $$``."""
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        m = re.match(r"^(\s*)\.\. math::\s*(.*)$", line)
        if not m:
            out.append(line)
            i += 1
            continue
        base = len(m.group(1))
        body = [m.group(2)] if m.group(2).strip() else []
        i += 1
        while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > base):
            if not lines[i].strip() and (i + 1 >= len(lines) or _indent(lines[i + 1]) <= base):
                break
            body.append(lines[i].strip())
            i += 1
        pad = " " * base
        out += [f"{pad}$$", *(f"{pad}{b}" for b in body if b), f"{pad}$$"]
    return "\n".join(out)


def _literal_blocks(text: str) -> str:
    """A paragraph ending in ``::``, a blank line and an indented block -> a fenced code block."""
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.rstrip().endswith("::") or line.strip().startswith(".."):
            out.append(line)
            i += 1
            continue
        base = _indent(line)
        stripped = line.rstrip()[:-2]
        # "text::" -> "text:"; " ::" alone -> nothing
        out.append(stripped + ":" if stripped and not stripped.endswith(" ") else stripped.rstrip())
        i += 1
        block: list[str] = []
        while i < len(lines) and not lines[i].strip():
            i += 1
        while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > base):
            block.append(lines[i])
            i += 1
        while block and not block[-1].strip():
            block.pop()
        code = textwrap.dedent("\n".join(block))
        try:
            ast.parse(code)
            lang = "python"
        except SyntaxError:
            lang = "text"
        pad = " " * base
        out += ["", f"{pad}```{lang}", *(f"{pad}{c}" if c else "" for c in code.split("\n")), f"{pad}```", ""]
    return "\n".join(out)


def _simple_tables(text: str) -> str:
    """reST simple tables (``===`` rules, a header row, body rows; a row whose first cell is empty
    continues the row above) -> Markdown tables."""
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        m = _RULE.match(lines[i])
        if not m or i + 2 >= len(lines) or not _RULE.match(lines[i + 2]):
            out.append(lines[i])
            i += 1
            continue
        rule = lines[i]
        spans = [(s.start(), s.end()) for s in re.finditer(r"=+", rule)]

        def cells(row: str) -> list[str]:
            parts = []
            for k, (a, _) in enumerate(spans):
                b = spans[k + 1][0] if k + 1 < len(spans) else len(row)
                parts.append(row[a:b].strip())
            return parts

        header = cells(lines[i + 1])
        rows: list[list[str]] = []
        j = i + 3
        while j < len(lines) and not _RULE.match(lines[j]):
            if lines[j].strip():
                c = cells(lines[j])
                if c[0] or not rows:
                    rows.append(c)
                else:
                    rows[-1] = [f"{a} {b}".strip() for a, b in zip(rows[-1], c)]
            j += 1
        pad = m.group(1)
        out.append(pad + "| " + " | ".join(header) + " |")
        out.append(pad + "|" + "---|" * len(header))
        out += [pad + "| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
        i = j + 1
    return "\n".join(out)
