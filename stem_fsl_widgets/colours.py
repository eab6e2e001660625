"""Class colours: one canonical form, ``"#RRGGBB"``, whatever the user typed.

Colours reach HTML, CSS, SVG, CSV and PNG exports, and a saved session is reopened by every
view; so a colour is validated once, where it enters (:meth:`Session.add_class`,
:meth:`Session.set_colour`, a session file), and stored as upper-case ``#RRGGBB`` (the form of
:data:`~stem_fsl_widgets.session.PALETTE`, so a saved colour reads back identical). Names are
the CSS colour keywords (Pillow's table of them; Pillow is already a dependency).
"""

from __future__ import annotations

import re

from .errors import InputError

__all__ = ["normalise_colour"]

_HEX = re.compile(r"^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")


def _css_names() -> dict[str, str]:
    from PIL import ImageColor

    return {k.lower(): v.lower() for k, v in ImageColor.colormap.items() if isinstance(v, str)}


def normalise_colour(colour: object) -> str:
    """Return ``colour`` as ``"#RRGGBB"``: hex (``#rgb``, ``#rrggbb``) or a CSS colour name.

    Parameters
    ----------
    colour : str
        ``"#E69F00"``, ``"#abc"``, ``"E69F00"``, ``"red"``, ``"DarkOrange"``...

    Returns
    -------
    str
        Upper-case ``#RRGGBB``.

    Raises
    ------
    InputError
        For anything else (other types, ``rgb()``, markup, unknown names).

    Examples
    --------
    >>> normalise_colour("red"), normalise_colour("#ABC"), normalise_colour("E69F00")
    ('#FF0000', '#AABBCC', '#E69F00')
    """
    if not isinstance(colour, str):
        raise InputError(f"A colour must be text such as '#e69f00' or 'red', not {type(colour).__name__} "
                         f"{colour!r}.")
    text = colour.strip()
    m = _HEX.match(text)
    if m:
        h = m.group(1).upper()
        return "#" + ("".join(c * 2 for c in h) if len(h) == 3 else h)
    named = _css_names().get(text.lower().replace(" ", ""))
    if named is not None and _HEX.match(named):
        return normalise_colour(named)
    shown = text if len(text) <= 40 else text[:40] + "…"
    raise InputError(f"{shown!r} is not a colour. Use a hex code such as '#e69f00' or a CSS colour "
                     "name such as 'red' or 'steelblue'.")
