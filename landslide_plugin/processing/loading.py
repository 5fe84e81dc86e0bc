"""Loading a one-step run's results into the project: one group per run, the primary map first.

What a person sees after 'Map landslides (pre/post)':

    Landslides T37SCB 2023-01-05 → 2023-08-05          (one group per output folder)
      Landslide polygons (GMM 3)                        on
      Landslide mask (GMM 3)                            on
      Landslide probability (GMM 3)                     on
      Clusters (GMM 3)                                  off
      Other methods                                     off, collapsed
        Landslide mask (dNDVI threshold), ...           off
      Post-event true colour 2023-08-05 (co-registered) on
      Pre-event true colour 2023-01-05                  off

How, with as few layer-tree changes as possible (every node QGIS moves or removes makes the layer tree
view pick a new current layer, and a user saw QGIS crash on quit after the earlier loader moved each
node): the algorithm hands QGIS a single layer to load, the primary mask (the anchor). Its post-processor,
called by QGIS in the main thread once that layer is in the project, builds the group where QGIS put the
anchor (or where the folder's previous group was), creates every other layer itself directly inside the
group (``addMapLayer(layer, False)``: no node is made elsewhere and moved), gives the anchor its node in the
group and removes the one QGIS made (the one node a run removes; in that order, or the project's registry
bridge would drop the layer, left for a moment without a node) and, on a re-run into the same folder,
removes the previous run's group and its layers (their files have just been replaced). A group remembers
its folder in a custom property.

QGIS keeps a post-processor only if Python keeps it referenced: every one is kept in ``RunLoader.alive``.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from qgis.core import (
    QgsLayerTreeGroup,
    QgsLayerTreeLayer,
    QgsProcessingLayerPostProcessorInterface,
    QgsRasterLayer,
    QgsVectorLayer,
)

from .styles import tidy_legend

#: Custom property of a run's group: the output folder it shows (a re-run into it replaces the group).
FOLDER_PROPERTY = "landslide_plugin/output_folder"
OTHER_METHODS = "Other methods"


@dataclass
class LayerToLoad:
    path: str
    name: str
    styler: Callable | None = None
    vector: bool = False
    visible: bool = True
    expanded: bool = False
    #: In the collapsed "Other methods" sub-group (switched off).
    other: bool = False


@dataclass
class RunLayers:
    """A run's layers, top to bottom; ``anchor`` is the index of the one QGIS loads itself."""

    group: str
    folder: str
    layers: list[LayerToLoad] = field(default_factory=list)
    anchor: int = 0


def folder_key(folder) -> str:
    return os.path.normcase(os.path.abspath(os.fspath(folder)))


def groups_of(root: QgsLayerTreeGroup) -> list[QgsLayerTreeGroup]:
    """Every group under ``root``, depth first."""
    found = []
    for child in root.children():
        if isinstance(child, QgsLayerTreeGroup):
            found.append(child)
            found.extend(groups_of(child))
    return found


class RunLoader(QgsProcessingLayerPostProcessorInterface):
    """Post-processor of the anchor layer: builds the run's group (see the module doc)."""

    alive: list = []

    def __init__(self, run: RunLayers):
        super().__init__()
        self.run = run
        self.removed_nodes = 0  # layer-tree nodes removed besides a replaced group (one per run at most)

    @classmethod
    def create(cls, run: RunLayers) -> RunLoader:
        loader = cls(run)
        cls.alive.append(loader)
        return loader

    def postProcessLayer(self, layer, context, feedback):  # noqa: N802
        try:
            project = layer.project() or context.project()
            if project is None:
                return
            self.build(layer, project, feedback)
        except Exception as exc:  # loading must never turn a finished run into a failure
            if feedback is not None:
                feedback.reportError(f"could not arrange the results in the layer panel: {exc}", fatalError=False)

    # -- the group ----------------------------------------------------------------------------------
    def build(self, anchor, project, feedback=None) -> QgsLayerTreeGroup:
        run = self.run
        root = project.layerTreeRoot()
        anchor_node = root.findLayer(anchor.id())
        previous = [g for g in groups_of(root) if g.customProperty(FOLDER_PROPERTY) == run.folder]
        if previous:  # the folder's earlier group: the new one takes its place
            parent = previous[0].parent()
            index = parent.children().index(previous[0])
        elif anchor_node is not None and anchor_node.parent() is not None:  # where QGIS put the new layer
            # ... but never inside another run's group (QGIS inserts new layers above the selected one)
            place = anchor_node
            for ancestor in _ancestors(anchor_node):
                if ancestor.customProperty(FOLDER_PROPERTY):
                    place = ancestor
            parent = place.parent()
            index = parent.children().index(place)
        else:
            parent, index = root, 0
        group = parent.insertGroup(index, self._unique_name(root, previous))
        group.setCustomProperty(FOLDER_PROPERTY, run.folder)
        group.setExpanded(True)
        others = None
        for position, item in enumerate(run.layers):
            target = group
            if item.other:
                if others is None:
                    others = group.addGroup(OTHER_METHODS)
                    others.setItemVisibilityChecked(False)
                    others.setExpanded(False)
                target = others
            if position == run.anchor:
                self._place_anchor(anchor, anchor_node, item, target)
            else:
                self._add(item, project, target, feedback)
        for old in previous:  # last: the new maps are in place before the replaced ones go
            ids = [layer_id for layer_id in old.findLayerIds() if layer_id != anchor.id()]
            if old.parent() is not None:
                old.parent().removeChildNode(old)
            project.removeMapLayers(ids)
        return group

    def _place_anchor(self, anchor, node, item, target):
        if node is not None and any(g.customProperty(FOLDER_PROPERTY) == self.run.folder
                                    for g in _ancestors(node)):
            # QGIS loads an output by finding a layer of the project with that source first: on a re-run into
            # the same folder that is the previous run's mask, whose file has just been replaced. The layer
            # stays (moved into the new group, not removed and made again) and reads its file again.
            anchor.reload()
        _style(anchor, item)
        # Its node in the group first, then the old node out: a layer left without a node for a moment is
        # removed from the project by the layer tree's registry bridge (a queued call, seconds later).
        new = _node(anchor, item)
        target.addChildNode(new)
        if node is not None and node.parent() is not None:
            node.parent().removeChildNode(node)
            self.removed_nodes += 1
        return new

    def _add(self, item, project, target, feedback):
        layer = QgsVectorLayer(item.path, item.name, "ogr") if item.vector else QgsRasterLayer(item.path, item.name)
        if not layer.isValid():
            if feedback is not None:
                feedback.reportError(f"could not load {item.path}", fatalError=False)
            return None
        _style(layer, item, feedback)
        if project.addMapLayer(layer, False) is None:
            return None
        node = _node(layer, item)
        target.addChildNode(node)
        return node

    def _unique_name(self, root, previous) -> str:
        taken = {g.name() for g in groups_of(root) if g not in previous}
        name = self.run.group
        if name in taken:
            name = f"{self.run.group} ({os.path.basename(self.run.folder.rstrip(os.sep)) or self.run.folder})"
        if name in taken:
            name = f"{self.run.group} ({time.strftime('%H:%M:%S')})"
        return name


def _node(layer, item: LayerToLoad) -> QgsLayerTreeLayer:
    """The layer's node, set up (shown or not, expanded or not, its legend tidied) before it enters the tree:
    the layer panel builds a node's legend when the node arrives, and would not see later legend settings."""
    node = QgsLayerTreeLayer(layer)
    node.setItemVisibilityChecked(item.visible)
    node.setExpanded(item.expanded)
    tidy_legend(node)
    return node


def _ancestors(node):
    parent = node.parent()
    while parent is not None:
        yield parent
        parent = parent.parent()


def _style(layer, item, feedback=None) -> None:
    layer.setName(item.name)
    if item.styler is None:
        return
    try:
        item.styler(layer)
    except Exception as exc:  # a style must never turn a finished run into a failure
        if feedback is not None:
            feedback.reportError(f"could not style {item.name}: {exc}", fatalError=False)
