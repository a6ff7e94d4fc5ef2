import json
import os
import sys


def pytest_configure(config):
    """Record the plugins pytest loaded from installed distributions (entry points)."""
    log = os.environ.get("FIXTURE_PLUGIN_LOG")
    if log:
        loaded = [
            getattr(plugin, "__file__", None) for plugin, _ in config.pluginmanager.list_plugin_distinfo()
        ]
        with open(log, "w") as out:
            json.dump({"plugins": sorted(p for p in loaded if p), "prefix": sys.prefix}, out)
