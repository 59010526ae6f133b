# The example of docs/configuration.md, with a second cluster for the multi-cluster target.
router {
  admin_addr  = "127.0.0.1:9464"
  admin_token = env("ROUTER_ADMIN_TOKEN", "")
  log_level   = "info"
  log_format  = "text"
}

store {
  path      = "data/router.db"
  retention = "168h"
  max_size  = "10GiB"
  on_full   = "block"
}

cluster "main" {
  url = env("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
}

cluster "dr" {
  url = "amqps://router:hunter2-dr@rabbit-dr.example:5671/prod"
  tls {
    ca_file     = "certs/ca.pem"
    cert_file   = "certs/client.pem"
    key_file    = "/etc/router/client.key"
    server_name = "rabbit.example"
  }
}

source "in" {
  cluster  = "main"
  exchange = "events"
  queue    = "router.events"
  bindings = ["#"]
  prefetch = 1000
}

source "payments" {
  cluster              = "dr"
  exchange             = "payments"
  queue                = "router.payments"
  queue_type           = "quorum"
  delivery_limit       = 5
  dead_letter_exchange = "router.undeliverable"
}

target "analytics" {
  cluster  = "main"
  exchange = "analytics"
}

target "dlq" {
  cluster     = "main"
  exchange    = "router.dlq"
  routing_key = "dead"
}

target "orders_everywhere" {
  clusters = ["main", "dr"]
  mode     = "all"
  exchange = "orders"
}

module "high_value" {
  path       = "examples/wasm/high_value.wasm"
  config     = { min_amount = "100", currency = upper("eur"), ratio = 1.5 }
  timeout    = "100ms"
  max_memory = "64MiB"
}

route "orders" {
  source     = "in"
  match      = ["order.*", "payment.#"]
  filters    = ["high_value"]
  transforms = []
  handler    = ""
  targets    = ["analytics", "orders_everywhere"]
  retry {
    attempts    = 3
    backoff     = "100ms"
    max_backoff = "10s"
  }
  dead_letter = "dlq"
}

test "big orders reach analytics" {
  input {
    source      = "in"
    routing_key = "order.created"
    headers     = { tenant = "acme" }
    body        = jsonencode({ amount = 500 })
  }
  expect {
    route   = "orders"
    targets = ["analytics", "orders_everywhere"]
  }
}

test "small orders are dropped" {
  input {
    source      = "in"
    routing_key = "order.created"
    body        = jsonencode({ amount = 5 })
  }
  expect {
    targets     = []
    routing_key = "order.created"
    body        = "{\"amount\":5}"
    headers     = { tenant = "acme", retries = 2 }
  }
}
