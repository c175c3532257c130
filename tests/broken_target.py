"""A target module whose import fails with something other than ImportError."""

raise RuntimeError("config missing: set SHOP_DATABASE_URL")
