"""The class list: add, rename, delete, recolour classes; pick the class a click labels."""

from __future__ import annotations

from collections.abc import Callable

import ipywidgets as widgets
import traitlets

from ..errors import InputError
from ..session import PALETTE
from .overlay import FollowsSession, guard, html_escape

__all__ = ["ClassPanel", "next_palette_colour"]


def next_palette_colour(current: str, used: set[str]) -> str:
    """The palette colour after ``current`` that no other class uses (cycling).

    Examples
    --------
    >>> next_palette_colour(PALETTE[0], {PALETTE[1]}) == PALETTE[2]
    True
    """
    cur = current.upper()
    taken = {c.upper() for c in used} - {cur}
    start = [c.upper() for c in PALETTE].index(cur) + 1 if cur in (c.upper() for c in PALETTE) else 0
    for step in range(len(PALETTE)):
        colour = PALETTE[(start + step) % len(PALETTE)]
        if colour.upper() not in taken:
            return colour
    return PALETTE[start % len(PALETTE)]


class _ClassRow(widgets.HBox):
    """One class: swatch (click: next palette colour), select button, count, rename, delete."""

    def __init__(self, index: int, name: str, colour: str) -> None:
        self.name = name
        self.swatch = widgets.Button(tooltip="change colour (Okabe–Ito palette)",
                                     layout=widgets.Layout(width="28px", height="28px"))
        self.swatch.style.button_color = colour
        shortcut = f"{index + 1}: " if index < 9 else ""
        self.select = widgets.ToggleButton(False, description=f"{shortcut}{name}",
                                           tooltip=f"label chips as {name}" +
                                           (f" (key {index + 1})" if index < 9 else ""),
                                           layout=widgets.Layout(width="170px"))
        self.count = widgets.HTML("", layout=widgets.Layout(width="80px"))
        self.rename = widgets.Text("", placeholder="rename…", continuous_update=False,
                                   layout=widgets.Layout(width="110px"))
        self.delete = widgets.Button(icon="trash", tooltip=f"delete {name} and its labels",
                                     layout=widgets.Layout(width="36px"))
        super().__init__([self.swatch, self.select, self.count, self.rename, self.delete],
                         layout=widgets.Layout(align_items="center"))


class ClassPanel(FollowsSession, widgets.VBox):
    """Classes of a session with their colours and support counts; the active class.

    Parameters
    ----------
    session : Session
    report : callable(str), optional
        Where error messages go; default this panel's note line.

    Attributes
    ----------
    rows : dict of str to row widget
        One row per class (``swatch``, ``select``, ``count``, ``rename``, ``delete``).
    new_name : ipywidgets.Text
        Name of a class to add; ``add_button`` adds it.
    note : ipywidgets.HTML
        The last action, or an error when no ``report`` was given.
    """

    active = traitlets.Unicode(None, allow_none=True)
    """The class a click labels (None without classes)."""

    def __init__(self, session, *, report: Callable[[str], None] | None = None) -> None:
        self.session = session
        self.report = report or self._report_here
        self.rows: dict[str, _ClassRow] = {}
        self._names: tuple[str, ...] | None = None
        self.new_name = widgets.Text("", placeholder="new class name", continuous_update=False,
                                     layout=widgets.Layout(width="170px"))
        self.add_button = widgets.Button(description="add class", icon="plus",
                                         layout=widgets.Layout(width="110px"))
        self.note = widgets.HTML("")
        self._list = widgets.VBox([])
        # Enter in the text box adds (observer below); the button adds what is still typed.
        self.add_button.on_click(lambda _b: self.new_name.value.strip() and self.add(self.new_name.value))
        self.new_name.observe(self._on_new_name, names="value")
        super().__init__([widgets.HTML("<b>Classes</b> <small>(keys 1–9 pick one)</small>"),
                          self._list, widgets.HBox([self.new_name, self.add_button]), self.note])
        self._follow(session)
        self.refresh()

    def close(self) -> None:
        """Stop following the session and close the widgets."""
        for row in getattr(self, "rows", {}).values():
            row.close()
        super().close()

    # ------------------------------------------------------------------ actions
    def add(self, name: str) -> None:
        """Add a class (palette colour) and make it the active one."""
        with guard(self.report, "add the class"):
            name = self.session.add_class(name)
            self.new_name.value = ""
            self.active = name

    def rename(self, old: str, new: str) -> None:
        """Rename a class; its supports and colour follow."""
        with guard(self.report, "rename the class"):
            was_active = self.active == old
            self.session.rename_class(old, new)
            if was_active:
                self.active = new.strip()

    def delete(self, name: str) -> None:
        """Delete a class and its supports (Ctrl+Z brings both back)."""
        with guard(self.report, "delete the class"):
            n = self.session.support_counts().get(name, 0)
            self.session.remove_class(name)
            self.note.value = html_escape(f"Deleted {name!r} and its {n} label(s); undo brings them back.")

    def cycle_colour(self, name: str) -> None:
        """Give a class the next Okabe–Ito colour not used by another class."""
        with guard(self.report, "change the colour"):
            if name not in self.session.classes:
                raise InputError(f"No class named {name!r}.")
            used = set(self.session.classes.values())
            self.session.set_colour(name, next_palette_colour(self.session.classes[name], used))

    def select(self, name: str) -> None:
        """Make ``name`` the active class."""
        with guard(self.report, "select the class"):
            if name not in self.session.classes:
                raise InputError(f"No class named {name!r}; classes are {list(self.session.classes)}.")
            self.active = name

    # ------------------------------------------------------------------ drawing
    def refresh(self) -> None:
        """Follow the session: rebuild rows when the class list changed, update counts and colours."""
        s = self.session
        names = tuple(s.classes)
        if names != self._names:
            self._rebuild(names)
        counts = s.support_counts()
        for name, row in self.rows.items():
            n = counts.get(name, 0)
            row.count.value = f"{n} label{'s' if n != 1 else ''}"
            if row.swatch.style.button_color != s.classes[name]:
                row.swatch.style.button_color = s.classes[name]
        if self.active not in s.classes:
            self.active = names[0] if names else None
        self._show_active()

    def _rebuild(self, names: tuple[str, ...]) -> None:
        old = self.rows
        self.rows = {}
        for i, name in enumerate(names):
            row = _ClassRow(i, name, self.session.classes[name])
            row.swatch.on_click(lambda _b, n=name: self.cycle_colour(n))
            row.delete.on_click(lambda _b, n=name: self.delete(n))
            row.select.observe(lambda ch, n=name: self._on_select(n, ch["new"]), names="value")
            row.rename.observe(lambda ch, n=name: self._on_rename(n, ch["new"]), names="value")
            self.rows[name] = row
        self._list.children = tuple(self.rows.values())
        self._names = names
        for row in old.values():
            row.close()

    @traitlets.observe("active")
    def _active_changed(self, _change: dict) -> None:
        self._show_active()

    def _show_active(self) -> None:
        for name, row in self.rows.items():
            row.select.value = name == self.active
            row.select.button_style = "info" if name == self.active else ""

    def _on_select(self, name: str, value: bool) -> None:
        if value:
            self.select(name)
        elif name == self.active:
            self.rows[name].select.value = True  # radio semantics: one stays selected

    def _on_rename(self, name: str, value: str) -> None:
        if value.strip():
            self.rename(name, value)

    def _on_new_name(self, change: dict) -> None:
        if change["new"].strip():
            self.add(change["new"])

    def _on_session_change(self, _session) -> None:
        with guard(self.report, "update the class list"):
            self.refresh()

    def _report_here(self, message: str) -> None:
        self.note.value = f"<span style='color:#b00020'>{html_escape(message)}</span>"
