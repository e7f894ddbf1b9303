"""QuakeFusion QGIS plugin: multi-modal earthquake displacement and InSAR unwrapping.

QGIS imports this folder as a package and calls ``classFactory``. Nothing heavy is imported here,
so QGIS starts fast even when the backend's dependencies are missing.
"""


import os
import sys

# One import root: the plugin folder is put on sys.path so that the plugin, the CLI and the tests all import the
# backend as the top-level package ``backend`` (one copy of every class, e.g. PipelineError).
_PLUGIN_DIR = os.path.dirname(os.path.abspath(__file__))
if _PLUGIN_DIR not in sys.path:
    sys.path.insert(0, _PLUGIN_DIR)


def classFactory(iface):  # noqa: N802 (QGIS API name)
    """Entry point called by QGIS with its QgisInterface."""
    from .plugin import QuakeFusionPlugin

    return QuakeFusionPlugin(iface)
