"""The class list: add, rename, delete, recolour classes; pick the class a click labels."""

from __future__ import annotations

import ipywidgets as widgets

from ..session import Session
from ..viewmodel import AppModel, next_palette_colour
from .base import ModelView

__all__ = ["ClassPanel", "next_palette_colour"]


class _ClassRow(widgets.HBox):
    """One class: swatch (click: next palette colour), select button, count, rename, delete."""

    def __init__(self, index: int, name: str, colour: str) -> None:
        self.name = name
        self.swatch = widgets.Button(tooltip="change colour (Okabe–Ito palette)",
                                     layout=widgets.Layout(width="28px", height="28px"))
        self.swatch.style.button_color = colour
        shortcut = f"{index + 1}: " if index < 9 else ""
        # ipywidgets render descriptions and tooltips as text, never as HTML.
        self.select = widgets.ToggleButton(False, description=f"{shortcut}{name}",
                                           tooltip=f"label chips as {name}" +
                                           (f" (key {index + 1})" if index < 9 else ""),
                                           layout=widgets.Layout(width="170px"))
        self.count = widgets.Label("", layout=widgets.Layout(width="80px"))
        self.rename = widgets.Text("", placeholder="rename…", continuous_update=False,
                                   layout=widgets.Layout(width="110px"))
        self.delete = widgets.Button(icon="trash", tooltip=f"delete {name} and its labels",
                                     layout=widgets.Layout(width="36px"))
        super().__init__([self.swatch, self.select, self.count, self.rename, self.delete],
                         layout=widgets.Layout(align_items="center"))


class ClassPanel(ModelView, widgets.VBox):
    """Classes with their colours and label counts; the active class.

    Parameters
    ----------
    model : AppModel or Session

    Attributes
    ----------
    rows : dict of str to row widget
        One row per class (``swatch``, ``select``, ``count``, ``rename``, ``delete``).
    new_name : ipywidgets.Text
        Name of a class to add; ``add_button`` adds it (Enter too).
    """

    SHOWS = frozenset({"classes"})

    def __init__(self, model: AppModel | Session) -> None:
        self._bind(model)
        self.rows: dict[str, _ClassRow] = {}
        self._names: tuple[str, ...] | None = None
        self._syncing = False
        self.new_name = widgets.Text("", placeholder="new class name", continuous_update=False,
                                     layout=widgets.Layout(width="170px"))
        self.add_button = widgets.Button(description="add class", icon="plus",
                                         layout=widgets.Layout(width="110px"))
        self._list = widgets.VBox([])
        # Enter in the text box adds (observer below); the button adds what is still typed.
        self.add_button.on_click(lambda _b: self.add(self.new_name.value))
        self.new_name.observe(self._on_new_name, names="value")
        super().__init__([widgets.HTML("<b>Classes</b> <small>(keys 1–9 pick one)</small>"),
                          self._list, widgets.HBox([self.new_name, self.add_button])])
        self.refresh()

    def close(self) -> None:
        """Stop following the model and close the widgets."""
        for row in getattr(self, "rows", {}).values():
            row.close()
        super().close()

    @property
    def active(self) -> str | None:
        """The class a click labels."""
        return self.model.active_class

    # ------------------------------------------------------------------ actions (the model's)
    def add(self, name: str) -> None:
        """Add a class (palette colour) and make it the active one."""
        if self.model.add_class(name) is not None and self.new_name.value:
            self._syncing = True
            try:
                self.new_name.value = ""
            finally:
                self._syncing = False

    def rename(self, old: str, new: str) -> None:
        """Rename a class; its labels and colour follow."""
        self.model.rename_class(old, new)

    def delete(self, name: str) -> None:
        """Delete a class and its labels (Ctrl+Z brings both back)."""
        self.model.remove_class(name)

    def cycle_colour(self, name: str) -> None:
        """Give a class the next Okabe–Ito colour not used by another class."""
        self.model.cycle_colour(name)

    def select(self, name: str) -> None:
        """Make ``name`` the active class."""
        self.model.select_class(name)

    # ------------------------------------------------------------------ drawing
    def refresh(self, topics: frozenset = frozenset()) -> None:
        """Rebuild rows when the class list changed; update counts, colours, the active class."""
        rows = self.model.class_rows()
        names = tuple(r[0] for r in rows)
        if names != self._names:
            self._rebuild(rows)
        active = self.model.active_class
        self._syncing = True
        try:
            for name, colour, n in rows:
                row = self.rows[name]
                row.count.value = f"{n} label{'s' if n != 1 else ''}"
                if row.swatch.style.button_color != colour:
                    row.swatch.style.button_color = colour
                row.select.value = name == active
                row.select.button_style = "info" if name == active else ""
        finally:
            self._syncing = False

    def _rebuild(self, rows: list[tuple[str, str, int]]) -> None:
        old = self.rows
        self.rows = {}
        for i, (name, colour, _n) in enumerate(rows):
            row = _ClassRow(i, name, colour)
            row.swatch.on_click(lambda _b, n=name: self.cycle_colour(n))
            row.delete.on_click(lambda _b, n=name: self.delete(n))
            row.select.observe(lambda ch, n=name: self._on_select(n, ch["new"]), names="value")
            row.rename.observe(lambda ch, n=name: self._on_rename(n, ch["new"]), names="value")
            self.rows[name] = row
        self._list.children = tuple(self.rows.values())
        self._names = tuple(self.rows)
        for row in old.values():
            row.close()

    def _on_select(self, name: str, value: bool) -> None:
        if self._syncing:
            return
        if value:
            self.select(name)
        self.refresh()  # radio semantics: exactly the active class stays pressed

    def _on_rename(self, name: str, value: str) -> None:
        if not self._syncing and value.strip():
            self.rename(name, value)

    def _on_new_name(self, change: dict) -> None:
        if not self._syncing and change["new"].strip():
            self.add(change["new"])
