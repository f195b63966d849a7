"""The service: ``interlock serve -c interlock.toml`` (config, app, proxy, admin API, dashboard)."""
