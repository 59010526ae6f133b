# The least a working configuration needs: every optional setting takes its default.
cluster "main" {
  url = "amqp://localhost"
}

source "in" {
  cluster  = "main"
  exchange = "events"
  queue    = "router.events"
}

target "out" {
  cluster  = "main"
  exchange = "out"
}

module "noop" {
  path = "noop.wasm"
}

route "all" {
  source  = "in"
  targets = ["out"]
}
