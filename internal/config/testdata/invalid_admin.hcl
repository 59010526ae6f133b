# A non-loopback admin_addr needs an admin_token (docs/admin-api.md); the token is never shown.
router {
  admin_addr  = "0.0.0.0:9464"
  admin_token = ""
}

router {
  admin_addr  = "rabbit.example:9464"
  admin_token = tonumber("hunter2-admin-token")
}

router {
  admin_addr = "localhost"
}

router {
  admin_addr  = "[::1]:99999"
  admin_token = env("ROUTER_TOKEN", "hunter2-token-default")
  # the token's variable used by mistake: its value must not be shown either
  log_level   = env("ROUTER_TOKEN", "hunter2-token-default")
}

router {
  admin_addr = ":9464"
}
