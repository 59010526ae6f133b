# The router's configuration: comments survive formatting.
router {
  admin_addr = "127.0.0.1:9464" # loopback only
  log_level  = "info"
}

cluster "main" {
  url = env("AMQP_URL", "amqp://guest:guest@localhost:5672/")
}

/* a block comment
   over two lines */
source "orders" {
  cluster  = "main"
  exchange = "orders"
  queue    = "router.orders"
  bindings = ["order.*", "refund.#"]
}

module "redact" {
  path = "wasm/redact.wasm"
  config = {
    fields = "card,cvv"
    mode   = "mask"
  }
}

route "all" {
  source = "orders"
  match  = ["#"]
  // the handler decides the target
  targets = ["audit"]
  retry {
    attempts = 3
  }
}
