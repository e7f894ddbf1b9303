"""QuakeFusion QGIS plugin: multi-modal earthquake displacement and InSAR unwrapping.

QGIS imports this folder as a package and calls ``classFactory``. Nothing heavy is imported here,
so QGIS starts fast even when the backend's dependencies are missing.
"""


def classFactory(iface):  # noqa: N802 (QGIS API name)
    """Entry point called by QGIS with its QgisInterface."""
    from .plugin import QuakeFusionPlugin

    return QuakeFusionPlugin(iface)
