# The example configuration: order and payment events from the "events" topic exchange,
# reshaped and fanned out by the WASM guests in examples/wasm. `make run` runs it; `make demo`
# publishes sample events and shows what each target received; `router test` runs the test
# blocks at the end without a broker.

router {
  admin_addr  = "127.0.0.1:9464"
  admin_token = env("ROUTER_ADMIN_TOKEN", "")
  log_level   = "info"
}

store {
  path      = "data/router.db"
  retention = "168h"
  max_size  = "10GiB"
}

cluster "main" {
  url = env("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
}

source "in" {
  cluster  = "main"
  exchange = "events"
  queue    = "router.events"
  bindings = ["order.#", "payment.#"]
  prefetch = 1000
}

target "analytics" {
  cluster  = "main"
  exchange = "analytics"
}

target "order_items" {
  cluster  = "main"
  exchange = "order-items"
}

target "audit" {
  cluster  = "main"
  exchange = "audit"
}

target "dlq" {
  cluster  = "main"
  exchange = "router.dead-letters"
}

# Keeps orders whose "amount" is at least 100 (Go guest).
module "high_value" {
  path   = "examples/wasm/threshold/threshold.wasm"
  config = { field = "amount", min = "100" }
}

# Masks the customer's contact details before they leave (Go guest).
module "redact_pii" {
  path   = "examples/wasm/redact/redact.wasm"
  config = { fields = "customer.email,customer.phone" }
}

# Emits one event per element of "items" to the order_items target (Go guest).
module "split_items" {
  path   = "examples/wasm/splitter/splitter.wasm"
  config = { field = "items", target = "order_items" }
}

# Keeps events whose "region" header is "eu" (C guest).
module "eu_only" {
  path   = "examples/wasm/keyfilter/keyfilter.wasm"
  config = { header = "region", value = "eu" }
}

route "big_orders" {
  source      = "in"
  match       = ["order.*"]
  filters     = ["high_value"]
  transforms  = ["redact_pii"]
  targets     = ["analytics"]
  dead_letter = "dlq"
}

route "order_items" {
  source      = "in"
  match       = ["order.created"]
  handler     = "split_items"
  targets     = []
  dead_letter = "dlq"
}

route "eu_payments" {
  source  = "in"
  match   = ["payment.#"]
  filters = ["eu_only"]
  targets = ["audit"]
  retry {
    attempts    = 3
    backoff     = "100ms"
    max_backoff = "10s"
  }
  dead_letter = "dlq"
}

test "big orders reach analytics without contact details" {
  input {
    source      = "in"
    routing_key = "order.created"
    headers     = { tenant = "acme" }
    body        = jsonencode({ amount = 500, customer = { email = "ann@example.com" } })
  }
  expect {
    route   = "big_orders"
    targets = ["analytics"]
    body    = jsonencode({ amount = 500, customer = { email = "***" } })
  }
}

test "small orders are dropped" {
  input {
    source      = "in"
    routing_key = "order.created"
    body        = jsonencode({ amount = 5 })
  }
  expect {
    route   = "big_orders"
    targets = []
  }
}

test "items are split out" {
  input {
    source      = "in"
    routing_key = "order.created"
    body        = jsonencode({ amount = 5, items = [{ sku = "A1" }, { sku = "B2" }] })
  }
  expect {
    route   = "order_items"
    targets = ["order_items"]
  }
}

test "only EU payments are audited" {
  input {
    source      = "in"
    routing_key = "payment.captured"
    headers     = { region = "us" }
    body        = "{}"
  }
  expect {
    route   = "eu_payments"
    targets = []
  }
}
