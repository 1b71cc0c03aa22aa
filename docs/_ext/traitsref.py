"""Sphinx directive ``traits``: a configuration reference from the code.

The traits' own help is the single source of each setting's documentation;
this renders it so that nobody retypes it (and nobody lets it drift)::

    ```{traits} hubext.spawner.HubextSpawner
    :inherited: uid fs_gid
    :no-default: url
    ```

Every ``config=True`` trait the class defines itself becomes a section
titled ``c.Class.name`` with its type, default and help. Traits inherited
from a base class appear only when named in ``:inherited:``; their default
is the one this class gives them. ``:no-default:`` names traits whose
default is computed at run time (from the environment, say), so the build
machine's value never lands in the docs.

Help text is plain prose with ``::`` literal blocks and ``c.X.y = ...``
examples. It is turned into docutils nodes here, never handed to a markup
parser, so unusual help text cannot make ``sphinx-build -W`` fail.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.util.docutils import SphinxDirective
from traitlets import HasTraits, TraitType

#: A configuration example line such as ``c.HubextSpawner.ssh_dir = "..."``.
_CONFIG_LINE = re.compile(r"^c\.[A-Za-z_]\w*\.[A-Za-z_]\w*")
#: In help text: a reST link `text <url>`_ (or __), ``code`` or `code`.
_INLINE = re.compile(r"`([^`<]+?)\s*<([^`>]+)>`__?|``(.+?)``|`([^`]+)`")
#: A reST directive line such as ``.. versionadded:: 7``.
_RST_DIRECTIVE = re.compile(r"^\.\. ([\w-]+)::\s*(.*)$")
_DIRECTIVE_WORDS = {
    "versionadded": "Added in version",
    "versionchanged": "Changed in version",
}
_BULLET = re.compile(r"^[-*] ")


def import_class(path: str) -> type:
    """``package.module.Class`` -> the class, or a ValueError saying why."""
    module_name, _, class_name = path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError) as e:
        raise ValueError(
            f"traits directive: cannot import {path!r} ({e}); give the full "
            "dotted path of a traitlets class, such as hubext.quota.QuotaPolicy"
        ) from None
    if not (isinstance(cls, type) and issubclass(cls, HasTraits)):
        raise ValueError(f"traits directive: {path!r} is not a traitlets class")
    return cls


def own_config_traits(cls: type) -> dict[str, TraitType]:
    """The class's own ``config=True`` traits, in the order it defines them."""
    own = cls.class_own_traits(config=True)
    order = [name for name in vars(cls) if name in own]
    return {name: own[name] for name in order}


def trait_type_name(trait: TraitType) -> str:
    """A short readable type: ``List of Unicode``, ``Unicode or None``."""
    name = type(trait).__name__
    values = getattr(trait, "values", None)
    if values is not None and "Enum" in name:
        name = "one of " + ", ".join(repr(v) for v in values)
    inner = getattr(trait, "_trait", None)
    if isinstance(inner, TraitType):
        name += f" of {type(inner).__name__}"
    value_trait = getattr(trait, "_value_trait", None)
    if isinstance(value_trait, TraitType):
        name += f" of {type(value_trait).__name__}"
    members = getattr(trait, "trait_types", None)
    if members:
        name = " or ".join(type(t).__name__ for t in members)
    if trait.allow_none:
        name += " or None"
    return name


def default_repr(cls: type, name: str, trait: TraitType) -> str:
    """The default as the code would give it, dynamic defaults included.

    A bare instance (only HasTraits' own set-up, not the class's
    ``__init__``) evaluates ``@default`` methods without the class's
    run-time context; when that fails, the static default is used.
    """
    if name in _dynamic_names(cls):
        try:
            bare = cls.__new__(cls)
            HasTraits.__init__(bare)
            return repr(getattr(bare, name))
        except Exception:  # any failure: fall back to the static default
            pass
    return trait.default_value_repr()


def _dynamic_names(cls: type) -> set[str]:
    names = set()
    for klass in cls.__mro__:
        names.update(vars(klass).get("_trait_default_generators", {}))
    return names


def help_blocks(text: str) -> list[tuple[str, str]]:
    """Split help text into ("para" | "code" | "bullets", text) blocks.

    Code is: the indented lines after a paragraph ending in ``::``, an
    indented paragraph, or a paragraph starting with ``c.Class.trait``.
    """
    lines = inspect.cleandoc(text or "").splitlines()
    blocks: list[tuple[str, str]] = []
    i, literal_next = 0, False
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        if literal_next and lines[i].startswith((" ", "\t")):
            j = i
            while j < len(lines) and (
                not lines[j].strip() or lines[j].startswith((" ", "\t"))
            ):
                j += 1
            blocks.append(("code", "\n".join(lines[i:j]).strip("\n")))
            i, literal_next = j, False
            continue
        j = i
        while j < len(lines) and lines[j].strip():
            j += 1
        chunk = lines[i:j]
        i, literal_next = j, False
        blocks.append(_classify(chunk))
        if blocks[-1][0] == "para" and blocks[-1][1].endswith("::"):
            literal_next = True
            para = blocks[-1][1]
            para = para[:-3] if para.endswith(" ::") else para[:-1]
            blocks[-1] = ("para", para)
    return [(kind, inspect.cleandoc(t) if kind == "code" else t) for kind, t in blocks]


def _classify(chunk: list[str]) -> tuple[str, str]:
    directive = _RST_DIRECTIVE.match(chunk[0])
    if directive and len(chunk) == 1:
        name, arg = directive.groups()
        words = _DIRECTIVE_WORDS.get(name, name.capitalize() + ":")
        return ("para", f"{words} {arg}".strip())
    if all(line.startswith((" ", "\t")) for line in chunk) or _CONFIG_LINE.match(
        chunk[0]
    ):
        return ("code", "\n".join(chunk))
    if _BULLET.match(chunk[0]):
        return ("bullets", "\n".join(chunk))
    return ("para", " ".join(line.strip() for line in chunk))


def inline_nodes(text: str) -> list[nodes.Node]:
    """Text with `code`, ``code`` and reST links as nodes; nothing else is
    parsed."""
    out: list[nodes.Node] = []
    pos = 0
    for match in _INLINE.finditer(text):
        if match.start() > pos:
            out.append(nodes.Text(text[pos : match.start()]))
        label, url, code = match.group(1), match.group(2), match.group(3)
        if label:
            out.append(nodes.reference(label, label, refuri=url))
        else:
            code = code or match.group(4)
            out.append(nodes.literal(code, code))
        pos = match.end()
    if pos < len(text):
        out.append(nodes.Text(text[pos:]))
    return out


def help_nodes(text: str) -> list[nodes.Node]:
    """Docutils nodes for one trait's help text."""
    out: list[nodes.Node] = []
    for kind, block in help_blocks(text):
        if kind == "code":
            out.append(_code_block(block))
        elif kind == "bullets":
            out.append(_bullet_list(block))
        else:
            out.append(nodes.paragraph("", "", *inline_nodes(block)))
    return out


def _code_block(code: str) -> nodes.literal_block:
    """Python examples are highlighted; anything else is plain text, so a
    lexer never meets input it would warn about."""
    try:
        ast.parse(code)
        language = "python"
    except SyntaxError:
        language = "text"
    block = nodes.literal_block(code, code)
    block["language"] = language
    return block


def _bullet_list(block: str) -> nodes.bullet_list:
    items: list[list[str]] = []
    for line in block.splitlines():
        if _BULLET.match(line):
            items.append([line[2:].strip()])
        elif items:
            items[-1].append(line.strip())
    blist = nodes.bullet_list(bullet="-")
    for item in items:
        para = nodes.paragraph("", "", *inline_nodes(" ".join(item)))
        blist += nodes.list_item("", para)
    return blist


def _names_option(value: str | None) -> list[str]:
    return [n for n in re.split(r"[\s,]+", value or "") if n]


class TraitsDirective(SphinxDirective):
    """``{traits} package.module.Class``: one section per setting."""

    required_arguments = 1
    has_content = False
    option_spec = {
        "inherited": directives.unchanged,
        "no-default": directives.unchanged,
    }

    def run(self) -> list[nodes.Node]:
        try:
            cls = import_class(self.arguments[0])
        except ValueError as e:
            raise self.error(str(e)) from None
        traits = own_config_traits(cls)
        inherited = _names_option(self.options.get("inherited"))
        all_traits = cls.class_traits(config=True)
        for name in inherited:
            if name not in all_traits:
                raise self.error(
                    f"traits directive: {cls.__name__} has no configurable trait "
                    f"{name!r} to list under :inherited:; check the spelling"
                )
        hidden = set(_names_option(self.options.get("no-default")))
        sections = [
            self._section(cls, name, trait, hidden, inherited=False)
            for name, trait in traits.items()
        ]
        sections += [
            self._section(cls, name, all_traits[name], hidden, inherited=True)
            for name in inherited
        ]
        return sections

    def _section(self, cls, name, trait, hidden, *, inherited) -> nodes.section:
        full = f"{cls.__name__}.{name}"
        node_id = nodes.make_id(full)
        section = nodes.section(ids=[node_id])
        title = f"c.{full}"
        section += nodes.title(title, "", nodes.literal(title, title))
        facts = nodes.field_list()
        facts += _field("type", [nodes.Text(trait_type_name(trait))])
        if name in hidden:
            default = [nodes.Text("computed at start; see below")]
        else:
            text = default_repr(cls, name, trait)
            default = [nodes.literal(text, text)]
        facts += _field("default", default)
        if inherited:
            owner = _defining_class(cls, name)
            facts += _field(
                "inherited from",
                [nodes.literal(owner, owner), nodes.Text("; its help follows")],
            )
        section += facts
        section += help_nodes(trait.help)
        self.env.get_domain("std").note_object(
            "confval", full, node_id, location=(self.env.docname, self.lineno)
        )
        return section


def _field(name: str, body: list[nodes.Node]) -> nodes.field:
    return nodes.field(
        "",
        nodes.field_name(name, name),
        nodes.field_body("", nodes.paragraph("", "", *body)),
    )


def _defining_class(cls: type, name: str) -> str:
    """Dotted name of the class in the MRO that declares trait ``name``."""
    trait = cls.class_traits()[name]
    for klass in cls.__mro__:
        if vars(klass).get(name) is trait:
            return f"{klass.__module__}.{klass.__qualname__}"
    return f"{cls.__module__}.{cls.__qualname__}"


def setup(app):
    app.add_directive("traits", TraitsDirective)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
