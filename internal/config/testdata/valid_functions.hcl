# Functions in expressions: env() with and without a default, file(), and the cty library.
router {
  admin_addr       = env("ADMIN_ADDR")
  admin_token      = trimspace(file("secrets/admin_token.txt"))
  log_level        = lower("DEBUG")
  log_format       = "json"
  max_message_size = "1.5MiB"
}

store {
  path      = "/var/lib/router/router.db"
  retention = "36h"
  max_size  = "500MB"
  on_full   = "drop_oldest"
}

cluster "main" {
  url = env("AMQP_URL")
}

source "in" {
  cluster  = "main"
  exchange = "events"
  queue    = format("router.%s", env("QUEUE_SUFFIX", "default"))
  bindings = split(",", "order.*,payment.#")
}

target "out" {
  cluster     = "main"
  exchange    = "out"
  routing_key = join(".", ["fixed", "key"])
}

target "ha" {
  clusters = ["main"]
  mode     = "failover"
  exchange = "ha"
}

module "enrich" {
  path      = "wasm/enrich.wasm"
  config    = merge({ region = "eu" }, jsondecode(file("module.json")))
  timeout   = "2s"
  pool_size = 8
}

route "enriched" {
  source     = "in"
  match      = concat(["order.#"], ["refund.*"])
  transforms = ["enrich"]
  handler    = "enrich"
  targets    = ["out", "ha"]
}

test "encoded" {
  input {
    source      = "in"
    routing_key = "order.created"
    headers     = { tenant = "acme", attempt = 1 }
    body        = base64encode(tostring(42))
  }
  expect {
    route       = "enriched"
    routing_key = "order.created"
    targets     = ["out", "ha"]
  }
}
