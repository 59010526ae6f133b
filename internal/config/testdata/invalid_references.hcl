# References to blocks that are not declared, each reported where the name is written.
cluster "main" {
  url = "amqp://localhost/"
}

source "in" {
  cluster  = "mian"
  exchange = "events"
  queue    = "q"
}

target "analytics" {
  clusters = ["main", "backup"]
  mode     = "failover"
  exchange = "analytics"
}

module "high_value" {
  path = "high_value.wasm"
}

route "orders" {
  source      = "inn"
  filters     = ["high_value", "low_value"]
  transforms  = ["rewrite"]
  handler     = "handle"
  targets     = ["analytics", "analytic", "archive"]
  dead_letter = "dlq"
}

test "t" {
  input {
    source = "elsewhere"
  }
  expect {
    route   = "order"
    targets = ["analytics", "nowhere"]
  }
}
